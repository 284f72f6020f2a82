//! HTTP routes and metrics: a process serves `/greeter/hello?name=…` on its node's port and
//! counts greetings; the node serves every metric at `/metrics/snapshot`.
//!
//! ```text
//! cargo run -p libactor --example routes_and_metrics
//! ```

use libactor::metrics::{Counter, ProcessMetrics};
use libactor::{Context, HttpRequest, HttpResponse, Node, Process};

/// The greeter's metric handles.
struct GreeterMetrics {
    greetings: Counter,
}

#[derive(Default)]
struct Greeter {
    metrics: ProcessMetrics<GreeterMetrics>,
}

impl Process for Greeter {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        self.metrics.set(GreeterMetrics {
            greetings: ctx.metrics().counter("greeter/greetings"),
        });
        ctx.route("/hello", |g: &mut Greeter, _, req: HttpRequest| {
            let Some(name) = req.query_param("name") else {
                return HttpResponse::bad_request("expected ?name=…");
            };
            g.metrics.inc(|m| &m.greetings);
            HttpResponse::text(200, format!("hello, {name}\n"))
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node = Node::builder().start()?;
    node.spawn("greeter", Greeter::default())?;
    let addr = node.address().to_owned();
    for path in ["/greeter/hello?name=ada", "/greeter/hello"] {
        let reply =
            libactor::http_client::request(&addr, "GET", path, &[], Default::default()).await?;
        println!(
            "GET {path} -> {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body).trim()
        );
    }
    let metrics = libactor::http_client::get_json(&addr, "/metrics/snapshot").await?;
    println!("greeter/greetings = {}", metrics["greeter/greetings"]);
    node.shutdown().await;
    Ok(())
}
