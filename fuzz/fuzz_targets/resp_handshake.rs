//! Arbitrary bytes from Redis as the answer to the handshake, greeted
//! each way a connection opens (`HELLO` in its own round trip, `HELLO`
//! or RESP2 `AUTH`/`CLIENT SETNAME`/`SELECT` in the first call's write),
//! with and without a password: every call ends, none goes on after the
//! stream was lost, and no error shows the password, even where the
//! server quotes it back in its first answer.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    opening: u8,
    password: bool,
    select: bool,
    hang_at_end: bool,
    /// The server's first answer quotes the password back.
    echo: bool,
    chunks: Vec<u8>,
    /// The rest of the input as it is (see `resp_replies`' input).
    bytes: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let chunks = input
        .chunks
        .iter()
        .map(|&c| usize::from(c).max(1))
        .collect();
    let openings = resp::testing::Opening::ALL;
    let opening = openings[usize::from(input.opening) % openings.len()];
    if let Err(broken) = resp::testing::check_arbitrary_handshake(
        opening,
        input.bytes,
        chunks,
        input.hang_at_end,
        input.password,
        input.select,
        input.echo,
    ) {
        panic!("{broken}");
    }
});
