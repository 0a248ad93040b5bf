//! Shared test setup: a stand-in with one account and one zone, and a
//! small client for its API.
#![allow(dead_code)]

use cloudflare_standin::{Config, StandIn};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const TOKEN: &str = "standin-test-token-0123456789";
pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
pub const ZONE: &str = "fedcba9876543210fedcba9876543210";
pub const ZONE_NAME: &str = "example.com";

pub fn config() -> Config {
    Config::single(TOKEN, ACCOUNT, ZONE, ZONE_NAME)
}

pub struct Api {
    pub standin: StandIn,
    pub client: reqwest::Client,
}

pub async fn start() -> Api {
    Api {
        standin: StandIn::start(config()).await.expect("stand-in starts"),
        // Redirects are not followed, so the edge's Access redirect shows.
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds"),
    }
}

impl Api {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.standin.base_url(), path)
    }

    /// An API request (`path` under `/client/v4`) carrying the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Sends a multipart body to the API.
    pub async fn multipart(
        &self,
        method: Method,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> (StatusCode, Value) {
        let response = self
            .request(method, path)
            .multipart(form)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A control API call (`path` under `/__standin`, no auth): the status
    /// and the JSON answer.
    pub async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("http://{}/__standin{path}", self.standin.addr());
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        (status, response.json().await.expect("control answers JSON"))
    }

    /// A GET to the edge emulation for `host` (by `Host` header), with
    /// Access service-token credentials `(client id, client secret)`.
    pub async fn edge(
        &self,
        host: &str,
        path: &str,
        creds: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let url = format!("http://{}{path}", self.standin.addr());
        let mut request = self.client.get(url).header("Host", host);
        if let Some((id, secret)) = creds {
            request = request
                .header("CF-Access-Client-Id", id)
                .header("CF-Access-Client-Secret", secret);
        }
        request.send().await.expect("request sent")
    }

    /// No request broke the schema and every answer matched it.
    pub fn assert_clean(&self) {
        assert_eq!(
            self.standin.violations().len(),
            0,
            "violations: {:#?}",
            self.standin.violations()
        );
        assert_eq!(
            self.standin.response_mismatches().len(),
            0,
            "response mismatches: {:#?}",
            self.standin.response_mismatches()
        );
    }
}

/// A module Worker upload: metadata plus one ES module part.
pub fn worker_form(metadata: Value, main_module: &str, source: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(metadata.to_string())
                .file_name("metadata.json")
                .mime_str("application/json")
                .unwrap(),
        )
        .part(
            main_module.to_owned(),
            reqwest::multipart::Part::text(source.to_owned())
                .file_name(main_module.to_owned())
                .mime_str("application/javascript+module")
                .unwrap(),
        )
}

/// Asserts the Cloudflare failure envelope with this code.
pub fn assert_error(body: &Value, code: u64) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    assert_eq!(body["messages"], serde_json::json!([]), "{body}");
}
