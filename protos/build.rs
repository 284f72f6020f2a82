//! Compiles every `.proto` under `proto/` with the pure-Rust `protox` compiler, so that building
//! Keel needs no system `protoc`, then generates Rust types with `prost-build`.

use std::path::{Path, PathBuf};

fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from("proto");
    let mut files = Vec::new();
    proto_files(&root, &mut files)?;
    files.sort();
    println!("cargo:rerun-if-changed=proto");

    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(false);
    for file in &files {
        compiler.open_file(file.strip_prefix(&root)?)?;
    }
    let descriptor_path = PathBuf::from(std::env::var("OUT_DIR")?).join("keel_descriptor.bin");
    std::fs::write(&descriptor_path, compiler.encode_file_descriptor_set())?;

    prost_build::Config::new()
        .enable_type_names()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .bytes(["."])
        .compile_protos(&files, &[&root])?;
    Ok(())
}
