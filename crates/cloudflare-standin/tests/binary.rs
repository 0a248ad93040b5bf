//! The `cloudflare-standin` binary prints its address and serves the API.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_prints_its_address_first_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloudflare-standin"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--token",
            "bin-token",
            "--account",
            "0123456789abcdef0123456789abcdef:Acme",
            "--zone",
            "fedcba9876543210fedcba9876543210:example.com",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("first line is the address");
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{addr}/client/v4/zones?name=example.com"))
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(body["result"][0]["account"]["name"], "Acme");
    assert_eq!(
        body["result"][0]["account"]["id"],
        "0123456789abcdef0123456789abcdef"
    );
}
