//! Arbitrary bytes from Redis after a good handshake: `resp::testing`'s
//! property (every call ends, a lost stream is reported and refuses later
//! calls, no needless timeout) holds in every chunking.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use resp::Protocol;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    resp3: bool,
    hang_at_end: bool,
    pipeline_len: u8,
    chunks: Vec<u8>,
    /// Borrowed, not `Vec<u8>`: arbitrary 1.5 puts a continuation byte
    /// before every element of a `Vec`, even the last field's, so a token
    /// libFuzzer inserts (from a dictionary or a traced comparison) never
    /// arrived whole; a slice is the rest of the input as it is.
    bytes: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let protocol = if input.resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let chunks: Vec<usize> = input
        .chunks
        .iter()
        .map(|&c| usize::from(c).max(1))
        .collect();
    let pipeline_len = usize::from(input.pipeline_len % 4) + 1;
    // Both orders on every input: the scripts' replies after the other
    // calls' and in their place, where most inputs' bytes go.
    for scripts_first in [false, true] {
        if let Err(broken) = resp::testing::check_arbitrary_replies(
            protocol,
            input.bytes,
            chunks.clone(),
            input.hang_at_end,
            pipeline_len,
            scripts_first,
        ) {
            panic!("{broken}");
        }
    }
});
