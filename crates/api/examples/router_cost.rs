//! What the API's router costs per request natively, warm and cold: the
//! share of a Worker request that is Rust (the rest is the runtime and the
//! JS bridge, which `cargo xtask bench` measures on workerd).
//!
//! On workerd the runtime's own work between two requests evicts most of
//! the Worker's code and data from the CPU caches, so what a request pays
//! is mostly the cache misses of the code it touches, not its instruction
//! count. "Cold" here sweeps a buffer larger than the last-level cache
//! before each request (the sweep is not timed).
//!
//! ```text
//! cargo run --release -p api --features native --example router_cost -- [healthz|cors-get|preflight] [REQUESTS] [SWEEP_MIB]
//! ```
//!
//! Under `valgrind --tool=cachegrind --cache-sim=yes` the counts
//! (instructions, and cache-line misses of code and data) repeat within
//! about half a percent, which timings on a shared VM do not; BENCHMARKS.md
//! (sixth pass) shows how.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use api::{App, Platform};
use axum::body::Body;
use axum::http::Request;

/// Counts allocations, to show how many a request makes.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const ORIGIN: &str = "http://localhost:8788";

fn request(case: &str) -> Request<Body> {
    let request = match case {
        "preflight" => Request::options("http://127.0.0.1/v1/pages/bench-read")
            .header("origin", ORIGIN)
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type,if-match"),
        // A browser's cross-origin read: through the CORS layer, which a
        // request without an `Origin` skips.
        "cors-get" => Request::get("http://127.0.0.1/healthz").header("origin", ORIGIN),
        _ => Request::get("http://127.0.0.1/healthz"),
    };
    let mut request = request
        .header("host", "127.0.0.1")
        .body(Body::empty())
        .expect("a valid request");
    // As the Worker gives every request its `waitUntil` (which is where a
    // transaction's rollback and telemetry's sends would go; none here).
    request
        .extensions_mut()
        .insert(outbound::Background::new(|_work| {}));
    request
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "healthz".to_owned());
    if !matches!(case.as_str(), "healthz" | "cors-get" | "preflight") {
        eprintln!(
            "usage: router_cost [healthz|cors-get|preflight] [REQUESTS (default 20000)] \
             [SWEEP_MIB: cache sweep before each cold request (default 64)]\n\
             Times REQUESTS warm requests, then as many cold ones (at most 2000)."
        );
        std::process::exit(2);
    }
    let requests: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let sweep_mib: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(64);

    let vars = [("ENVIRONMENT", "dev"), ("ALLOWED_ORIGINS", ORIGIN)];
    let app = App::new(
        |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        },
        Platform::native(),
    );
    let router = api::router(app);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut buffer = vec![1u8; sweep_mib << 20];

    runtime.block_on(async {
        let case = case.as_str();
        // As the Worker calls it: one shared router, `handle` per request.
        let run = |router: &api::Api| {
            let answer = router.handle(request(case));
            async move {
                let response = answer.await;
                assert!(response.status().is_success(), "{}", response.status());
                std::hint::black_box(axum::body::to_bytes(response.into_body(), usize::MAX).await)
            }
        };
        for _ in 0..1000 {
            run(&router).await.expect("a body");
        }

        let before = ALLOCATIONS.load(Relaxed);
        run(&router).await.expect("a body");
        let allocations = ALLOCATIONS.load(Relaxed) - before;

        let started = Instant::now();
        for _ in 0..requests {
            run(&router).await.expect("a body");
        }
        let warm = started.elapsed() / requests;

        let mut cold = Duration::ZERO;
        for _ in 0..requests.min(2000) {
            for i in (0..buffer.len()).step_by(64) {
                buffer[i] = buffer[i].wrapping_add(1);
            }
            std::hint::black_box(&buffer);
            let started = Instant::now();
            run(&router).await.expect("a body");
            cold += started.elapsed();
        }
        let cold = cold / requests.min(2000);
        println!(
            "{case}: warm {:.1} us, cold {:.1} us per request; {allocations} allocations",
            warm.as_secs_f64() * 1e6,
            cold.as_secs_f64() * 1e6
        );
    });
}
