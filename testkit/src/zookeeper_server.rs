//! A real ZooKeeper server for tests and benchmarks (Debian's `zookeeper` package, which the README's test
//! command installs): a free 127.0.0.1 port, its own data dir, started with
//! `ZooKeeperServerMain`, killed by its pid when dropped (also when the test fails).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where Debian's package puts the server.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// How long a server may take to answer `ruok` (a JVM start).
pub const ZOOKEEPER_START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running ZooKeeper server.
pub struct ZooKeeperServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Starts the server's JVM on `config`, logging to `log`.
fn spawn_server(dir: &std::path::Path, config: &std::path::Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    Command::new("java")
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-cp",
            ZOOKEEPER_JAR,
            "org.apache.zookeeper.server.ZooKeeperServerMain",
        ])
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting java for ZooKeeper")
}

impl ZooKeeperServer {
    /// Starts a server and waits until it serves.
    pub fn start() -> anyhow::Result<ZooKeeperServer> {
        if !std::path::Path::new(ZOOKEEPER_JAR).exists() {
            bail!("{ZOOKEEPER_JAR} is missing: install Debian's `zookeeper` package (bash scripts/test.sh does)");
        }
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let config = dir.path().join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr\n\
                 minSessionTimeout=1000\nmaxSessionTimeout=60000\n",
                data.display()
            ),
        )?;
        let child = spawn_server(dir.path(), &config)?;
        let mut server = ZooKeeperServer {
            child,
            port,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + ZOOKEEPER_START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "ZooKeeper exited before serving ({status}); see {}",
                    self.log().display()
                );
            }
            // `imok` comes as soon as the JVM listens; `srvr` names the mode only once the
            // server accepts sessions.
            if self.four_letter("ruok").is_ok_and(|r| r == "imok")
                && self.four_letter("srvr").is_ok_and(|r| r.contains("Mode:"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("ZooKeeper did not answer ruok within {ZOOKEEPER_START_TIMEOUT:?}");
            }
            // The server opens its port when the JVM gets there; nothing to wait on but it.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (its clients see the connection break); [`ZooKeeperServer::resume`]
    /// starts it again on the same port and data, with the sessions it had.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts the server again after [`ZooKeeperServer::kill`] and waits until it serves.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.child = spawn_server(self._dir.path(), &self._dir.path().join("zoo.cfg"))?;
        self.wait_ready()
    }

    /// Sends a four-letter command (`ruok`, `srvr`, `mntr`) and returns the answer.
    pub fn four_letter(&self, command: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(command.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `zk://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.port)
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self._dir.path().join("server.log")
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}
