//! Building requests: a command is an array of binary-safe bulk strings
//! (RESP2 framing, which RESP3 servers accept too), a pipeline is many
//! commands encoded into one buffer so they go out in one write.

use std::fmt;

use bytes::BytesMut;
use redis_protocol::resp2::encode::extend_encode_borrowed;
use redis_protocol::resp2::types::BorrowedFrame;

use crate::Error;

/// A value that can be a command argument. Strings and bytes go as they
/// are; numbers go in decimal, which is how Redis parses them.
pub trait ToArg {
    /// Appends the argument's bytes to `out`.
    fn write_arg(&self, out: &mut Vec<u8>);
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn write_arg(&self, out: &mut Vec<u8>) {
        (**self).write_arg(out)
    }
}

impl ToArg for str {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes())
    }
}

impl ToArg for String {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes())
    }
}

impl ToArg for [u8] {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self)
    }
}

impl<const N: usize> ToArg for [u8; N] {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self)
    }
}

impl ToArg for Vec<u8> {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self)
    }
}

impl ToArg for bytes::Bytes {
    fn write_arg(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self)
    }
}

macro_rules! decimal_arg {
    ($($t:ty),*) => {$(
        impl ToArg for $t {
            fn write_arg(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.to_string().as_bytes())
            }
        }
    )*};
}

// f64's `Display` is the shortest text that parses back to the same value
// (and `inf`/`-inf`, which Redis accepts as well).
decimal_arg!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, f64);

/// One command: its name and arguments, each a binary-safe string.
///
/// `Debug` shows the name and the number of arguments only, never their
/// values, so a command carrying a password or a user's data can be
/// logged safely.
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    parts: Vec<Vec<u8>>,
}

/// Starts a command: `cmd("SET").arg(key).arg(value)`.
pub fn cmd(name: &str) -> Cmd {
    Cmd {
        parts: vec![name.as_bytes().to_vec()],
    }
}

impl Cmd {
    /// Appends one argument.
    pub fn arg(mut self, arg: impl ToArg) -> Self {
        self.push_arg(arg);
        self
    }

    /// Appends every argument of `args`, in order (`DEL k1 k2 k3`).
    pub fn args<A: ToArg>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        for arg in args {
            self.push_arg(arg);
        }
        self
    }

    /// Appends one argument in place, for building a command in a loop.
    pub fn push_arg(&mut self, arg: impl ToArg) {
        let mut bytes = Vec::new();
        arg.write_arg(&mut bytes);
        self.parts.push(bytes);
    }

    /// The command name as given to [`cmd`].
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.parts[0]).into_owned()
    }

    /// Appends the command's RESP encoding to `out`.
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        let parts: Vec<BorrowedFrame<'_>> = self
            .parts
            .iter()
            .map(|part| BorrowedFrame::BulkString(part))
            .collect();
        extend_encode_borrowed(out, &BorrowedFrame::Array(&parts), false)
            .map(|_| ())
            .map_err(|e| Error::Protocol(format!("cannot encode {}: {e}", self.name())))
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmd")
            .field("name", &self.name())
            .field("args", &(self.parts.len() - 1))
            .finish()
    }
}

/// Commands sent together: one write to the socket, replies read back in
/// order, one per command. Run it with
/// [`Connection::pipeline`](crate::Connection::pipeline) (independent
/// commands) or [`Connection::transaction`](crate::Connection::transaction)
/// (wrapped in `MULTI`/`EXEC`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    commands: Vec<Cmd>,
}

impl Pipeline {
    pub fn new() -> Self {
        Pipeline::default()
    }

    /// Adds a command, builder style.
    pub fn with(mut self, cmd: Cmd) -> Self {
        self.commands.push(cmd);
        self
    }

    /// Adds a command in place, for building a pipeline in a loop.
    pub fn push(&mut self, cmd: Cmd) {
        self.commands.push(cmd);
    }

    /// How many commands (and so replies) there are.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub(crate) fn commands(&self) -> &[Cmd] {
        &self.commands
    }

    /// Every command's encoding, back to back: the single write.
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        self.commands.iter().try_for_each(|cmd| cmd.encode(out))
    }
}

impl FromIterator<Cmd> for Pipeline {
    fn from_iter<I: IntoIterator<Item = Cmd>>(commands: I) -> Self {
        Pipeline {
            commands: commands.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(cmd: &Cmd) -> Vec<u8> {
        let mut out = BytesMut::new();
        cmd.encode(&mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn a_command_is_an_array_of_bulk_strings() {
        let c = cmd("SET").arg("k").arg(b"v\r\n\0".as_slice()).arg(-12i64);
        assert_eq!(
            wire(&c),
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\n\0\r\n$3\r\n-12\r\n".to_vec()
        );
    }

    #[test]
    fn arguments_of_every_kind_encode_as_their_bytes() {
        let key = String::from("key");
        let bytes = vec![0xffu8, 0];
        let c = cmd("X")
            .arg(&key)
            .arg(&bytes)
            .arg(b"ab")
            .arg(7u32)
            .arg(1.5f64)
            .arg(bytes::Bytes::from_static(b"z"))
            .args(["a", "b"]);
        assert_eq!(
            c.parts,
            vec![
                b"X".to_vec(),
                b"key".to_vec(),
                vec![0xff, 0],
                b"ab".to_vec(),
                b"7".to_vec(),
                b"1.5".to_vec(),
                b"z".to_vec(),
                b"a".to_vec(),
                b"b".to_vec(),
            ]
        );
    }

    #[test]
    fn an_empty_argument_is_an_empty_bulk_string() {
        assert_eq!(
            wire(&cmd("GET").arg("")),
            b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn debug_shows_the_name_but_not_the_arguments() {
        let c = cmd("AUTH").arg("default").arg("hunter2");
        let shown = format!("{c:?}");
        assert!(shown.contains("AUTH") && shown.contains('2'), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_pipeline_encodes_its_commands_back_to_back() {
        let p: Pipeline = [cmd("PING"), cmd("GET").arg("a")].into_iter().collect();
        let mut out = BytesMut::new();
        p.encode(&mut out).unwrap();
        assert_eq!(
            &out[..],
            b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
        );
        assert_eq!(p.len(), 2);
    }
}
