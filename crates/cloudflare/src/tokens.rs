//! API token verification: the first call of a deploy, to fail fast with a
//! clear message when the token is wrong or expired.

use serde::{Deserialize, Serialize};

use crate::client::{seg, Client};
use crate::error::Result;

/// `GET /user/tokens/verify` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStatus {
    pub id: String,
    /// `active`, `disabled` or `expired`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
}

impl TokenStatus {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// Token operations; see [`Client::tokens`].
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'c> {
    client: &'c Client,
}

impl Client {
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens { client: self }
    }
}

impl Tokens<'_> {
    /// Verifies a user-owned token (`GET /user/tokens/verify`).
    pub async fn verify(&self) -> Result<TokenStatus> {
        self.client.get("/user/tokens/verify").await
    }

    /// Verifies an account-owned token
    /// (`GET /accounts/{account_id}/tokens/verify`).
    pub async fn verify_account_token(&self, account_id: &str) -> Result<TokenStatus> {
        self.client
            .get(format!("/accounts/{}/tokens/verify", seg(account_id)))
            .await
    }
}
