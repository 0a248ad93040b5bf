//! Arbitrary bytes from Redis as the answer to the handshake, with and
//! without a password: opening ends, and no error shows the password.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    password: bool,
    hang_at_end: bool,
    chunks: Vec<u8>,
    bytes: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let chunks = input
        .chunks
        .iter()
        .map(|&c| usize::from(c).max(1))
        .collect();
    if let Err(broken) = resp::testing::check_arbitrary_handshake(
        &input.bytes,
        chunks,
        input.hang_at_end,
        input.password,
    ) {
        panic!("{broken}");
    }
});
