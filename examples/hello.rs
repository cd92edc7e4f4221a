//! The HTTP ceiling of the machine: axum's hello world (`GET /` answers "Hello, World!"), built
//! with the same crates and profile as tokenmint. `bench/load.sh` measures it beside the real
//! server in the same run, so tokenmint's throughput reads as a share of what HTTP alone allows.
//!
//! Usage: cargo run --release --example hello -- 127.0.0.1:18100

use axum::Router;
use axum::routing::get;

/// The production binary's allocator, so the comparison measures the layers, not the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18100".into());
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("binds");
    axum::serve(listener, app).await.expect("serves");
}
