//! Lua scripts named by their SHA-1, so the usual call is one `EVALSHA`
//! round trip and the source crosses the network only when the server's
//! script cache lacks it (after a restart or `SCRIPT FLUSH`).

use sha1::{Digest, Sha1};

use crate::cmd::{cmd, Cmd, ToArg};

/// A Lua script and its SHA-1, computed once (make it a `static` or keep
/// it in shared state, not per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    source: String,
    sha1: String,
}

impl Script {
    pub fn new(source: impl Into<String>) -> Self {
        let source = source.into();
        let digest = Sha1::digest(source.as_bytes());
        let sha1 = digest.iter().map(|b| format!("{b:02x}")).collect();
        Script { source, sha1 }
    }

    /// The lowercase hex SHA-1 of the source, as `EVALSHA` and
    /// `SCRIPT LOAD` use it.
    pub fn sha1(&self) -> &str {
        &self.sha1
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Starts a call of this script; add `KEYS` and `ARGV`, then run it
    /// with [`Connection::invoke`](crate::Connection::invoke).
    pub fn call(&self) -> ScriptCall<'_> {
        ScriptCall {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// One call of a [`Script`]: its `KEYS` and `ARGV`. Keys are kept apart
/// from arguments because Redis (and Redis Cloud's clustering) needs to
/// know which arguments name keys.
#[derive(Debug, Clone)]
pub struct ScriptCall<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

/// Equal calls are the same script with the same keys and arguments: the
/// same command on the wire. Calls of one `static` script (the usual case,
/// compared per request) are told apart by its address, without comparing
/// its source.
impl PartialEq for ScriptCall<'_> {
    fn eq(&self, other: &Self) -> bool {
        (std::ptr::eq(self.script, other.script) || self.script == other.script)
            && self.keys == other.keys
            && self.args == other.args
    }
}

impl Eq for ScriptCall<'_> {}

impl ScriptCall<'_> {
    /// Appends to `KEYS`.
    pub fn key(mut self, key: impl ToArg) -> Self {
        let mut bytes = Vec::new();
        key.write_arg(&mut bytes);
        self.keys.push(bytes);
        self
    }

    /// Appends to `ARGV`.
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        let mut bytes = Vec::new();
        arg.write_arg(&mut bytes);
        self.args.push(bytes);
        self
    }

    /// `EVALSHA sha numkeys keys... args...`, or `EVAL source ...`.
    pub(crate) fn command(&self, name: &str) -> Cmd {
        let script = match name {
            "EVAL" => &self.script.source,
            _ => &self.script.sha1,
        };
        cmd(name)
            .arg(script)
            .arg(self.keys.len())
            .args(&self.keys)
            .args(&self.args)
    }
}

/// Something a script can run on: a [`Connection`](crate::Connection) or a
/// [`LazyConnection`](crate::LazyConnection). Crates built on Lua scripts
/// (the cache, the rate limiter) take this, so callers choose whether a
/// request connects eagerly or on first use. The future is `Send` because
/// axum handlers must be.
pub trait RunScript {
    /// Runs `call` (`EVALSHA`, then `EVAL` if the server lacks the script).
    fn run_script(
        &mut self,
        call: ScriptCall<'_>,
    ) -> impl std::future::Future<Output = Result<crate::Reply, crate::Error>> + Send;
}

impl<S> RunScript for crate::Connection<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    fn run_script(
        &mut self,
        call: ScriptCall<'_>,
    ) -> impl std::future::Future<Output = Result<crate::Reply, crate::Error>> + Send {
        self.invoke(call)
    }
}

impl<S, F, Fut, E> RunScript for crate::LazyConnection<S, F>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = Result<S, E>> + Send,
    E: std::fmt::Display,
{
    fn run_script(
        &mut self,
        call: ScriptCall<'_>,
    ) -> impl std::future::Future<Output = Result<crate::Reply, crate::Error>> + Send {
        self.invoke(call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha1_is_the_one_redis_computes() {
        // `redis-cli SCRIPT LOAD "return 1"`.
        assert_eq!(
            Script::new("return 1").sha1(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn calls_are_equal_when_their_script_keys_and_arguments_are() {
        let script = Script::new("return 1");
        let twin = Script::new("return 1");
        let call = || script.call().key("k").arg(1);
        assert_eq!(call(), call());
        assert_eq!(
            call(),
            twin.call().key("k").arg(1),
            "the same source elsewhere"
        );
        assert_ne!(call(), script.call().key("other").arg(1));
        assert_ne!(call(), script.call().key("k").arg(2));
        assert_ne!(
            call(),
            script.call().arg("k").arg(1),
            "a key is not an argument"
        );
        assert_ne!(call(), Script::new("return 2").call().key("k").arg(1));
    }

    #[test]
    fn a_call_puts_the_key_count_before_keys_and_arguments() {
        let script = Script::new("return 1");
        let call = script.call().key("k1").key("k2").arg(10).arg("x");
        assert_eq!(
            call.command("EVALSHA"),
            cmd("EVALSHA")
                .arg(script.sha1())
                .arg("2")
                .arg("k1")
                .arg("k2")
                .arg("10")
                .arg("x")
        );
        assert_eq!(
            call.command("EVAL"),
            cmd("EVAL")
                .arg("return 1")
                .args(["2", "k1", "k2", "10", "x"])
        );
    }
}
