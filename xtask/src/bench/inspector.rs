//! Just enough of V8's inspector protocol (the Chrome DevTools Protocol over
//! a WebSocket, which `workerd serve --inspector-addr` offers per service)
//! for the soak to measure what a Worker keeps in memory: make the isolate
//! collect its garbage, then read its JS heap and its wasm memory.
//!
//! Without this, the soak's RSS climbs with garbage V8 has simply not yet
//! collected (it collects lazily while there is room), which says nothing
//! about a leak. `HeapProfiler.collectGarbage` gets no answer from workerd;
//! `Runtime.queryObjects` does, and it runs a full collection first.
//!
//! The bench's `--profile` also takes CPU profiles through it.

use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// An isolate's memory right after a full garbage collection.
#[derive(Debug, Clone, Copy)]
pub struct Heap {
    /// Bytes of live JS objects.
    pub js_used_bytes: u64,
    /// Bytes of every wasm memory (the Worker's linear memory).
    pub wasm_bytes: u64,
}

/// A session with one service's isolate.
pub struct Inspector {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// The isolate's JS context, announced after `Runtime.enable`.
    context: Option<u64>,
}

impl Inspector {
    /// Opens a session with `service` on the inspector at `address`
    /// (`host:port`).
    pub fn connect(address: &str, service: &str) -> anyhow::Result<Inspector> {
        let url = format!("ws://{address}/{service}");
        let (socket, _) =
            tungstenite::connect(&url).with_context(|| format!("connecting to {url}"))?;
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        }
        let mut inspector = Inspector {
            socket,
            next_id: 0,
            context: None,
        };
        inspector.call("Runtime.enable", json!({}))?;
        if inspector.context.is_none() {
            bail!("{service}: the inspector announced no JS context");
        }
        Ok(inspector)
    }

    /// Sends one command and returns its `result`; events in between are
    /// read for the context id and otherwise skipped.
    fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.socket
            .send(Message::text(command.to_string()))
            .with_context(|| format!("sending {method}"))?;
        loop {
            let message = self
                .socket
                .read()
                .with_context(|| format!("waiting for the answer to {method}"))?;
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text)?;
            if answer["method"] == "Runtime.executionContextCreated" {
                self.context = self.context.or(answer["params"]["context"]["id"].as_u64());
            }
            if answer["id"] == id {
                if let Some(error) = answer.get("error") {
                    bail!("{method}: {error}");
                }
                return Ok(answer["result"].clone());
            }
        }
    }

    /// Collects the isolate's garbage (`Runtime.queryObjects` does a full
    /// collection before it looks), then reads the live JS heap and the
    /// size of the wasm memories it found.
    pub fn heap_after_gc(&mut self) -> anyhow::Result<Heap> {
        let prototype = self.call(
            "Runtime.evaluate",
            json!({ "expression": "WebAssembly.Memory.prototype", "contextId": self.context }),
        )?;
        let prototype = prototype["result"]["objectId"].clone();
        let memories = self.call(
            "Runtime.queryObjects",
            json!({ "prototypeObjectId": prototype }),
        )?;
        let sizes = self.call(
            "Runtime.callFunctionOn",
            json!({
                "objectId": memories["objects"]["objectId"],
                "functionDeclaration":
                    "function () { return this.reduce((n, m) => n + m.buffer.byteLength, 0); }",
                "returnByValue": true,
            }),
        )?;
        let usage = self.call("Runtime.getHeapUsage", json!({}))?;
        Ok(Heap {
            js_used_bytes: usage["usedSize"].as_f64().unwrap_or(0.0) as u64,
            wasm_bytes: sizes["result"]["value"].as_f64().unwrap_or(0.0) as u64,
        })
    }

    /// Starts V8's sampling profiler, a sample every `interval_us`.
    pub fn start_profile(&mut self, interval_us: u64) -> anyhow::Result<()> {
        self.call("Profiler.enable", json!({}))?;
        // Only taken while the profiler is stopped.
        self.call(
            "Profiler.setSamplingInterval",
            json!({ "interval": interval_us }),
        )?;
        self.call("Profiler.start", json!({}))?;
        Ok(())
    }

    /// Stops the profiler and returns its profile (`nodes`, `samples`,
    /// `timeDeltas`, as Chrome DevTools' `.cpuprofile` files hold it).
    pub fn stop_profile(&mut self) -> anyhow::Result<Value> {
        let mut result = self.call("Profiler.stop", json!({}))?;
        Ok(result["profile"].take())
    }
}
