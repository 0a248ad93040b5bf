//! DNS records of a zone.

use serde::{Deserialize, Serialize};

use crate::client::{seg, Client, Request};
use crate::error::Result;

/// TTL value meaning "automatic" (300 s for unproxied records).
pub const TTL_AUTO: u32 = 1;

/// A DNS record as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub proxied: bool,
    #[serde(default = "ttl_auto")]
    pub ttl: u32,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
}

fn ttl_auto() -> u32 {
    TTL_AUTO
}

/// The body of create (POST), overwrite (PUT) and patch (PATCH).
///
/// The published schema requires `name`, `type` and `ttl` for all three,
/// so patches carry them too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsRecordInput {
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// 1 for automatic, otherwise 30..=86400 seconds.
    pub ttl: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxied: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Required for MX records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
}

impl DnsRecordInput {
    /// A record of `record_type` with automatic TTL.
    pub fn new(
        record_type: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        Self {
            record_type: record_type.into(),
            name: name.into(),
            content: Some(content.into()),
            ttl: TTL_AUTO,
            proxied: None,
            comment: None,
            tags: None,
            priority: None,
        }
    }

    pub fn proxied(mut self, proxied: bool) -> Self {
        self.proxied = Some(proxied);
        self
    }

    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn tags(mut self, tags: Vec<String>) -> Self {
        self.tags = Some(tags);
        self
    }
}

/// Filters for [`Dns::list`]; unset fields are not sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListDnsRecords {
    /// Exact record name (FQDN).
    pub name: Option<String>,
    pub record_type: Option<String>,
    /// Exact content.
    pub content: Option<String>,
    /// Exact comment.
    pub comment: Option<String>,
    /// Comment prefix, for records the deploy tool marks as its own.
    pub comment_startswith: Option<String>,
    /// A tag, as `name:value`.
    pub tag: Option<String>,
}

/// DNS operations in one zone; see [`Client::dns`].
#[derive(Debug, Clone)]
pub struct Dns<'c> {
    client: &'c Client,
    zone_id: String,
}

impl Client {
    pub fn dns(&self, zone_id: &str) -> Dns<'_> {
        Dns {
            client: self,
            zone_id: zone_id.to_string(),
        }
    }
}

/// Records per page when listing: large, to keep a no-op deploy to one call.
const DNS_PER_PAGE: u32 = 500;

impl Dns<'_> {
    fn records_path(&self) -> String {
        format!("/zones/{}/dns_records", seg(&self.zone_id))
    }

    fn record_path(&self, record_id: &str) -> String {
        format!("{}/{}", self.records_path(), seg(record_id))
    }

    /// All records matching `filter`, across all pages.
    pub async fn list(&self, filter: &ListDnsRecords) -> Result<Vec<DnsRecord>> {
        let request = Request::get(self.records_path())
            .query_opt("name", filter.name.as_deref())
            .query_opt("type", filter.record_type.as_deref())
            .query_opt("content", filter.content.as_deref())
            .query_opt("comment", filter.comment.as_deref())
            .query_opt("comment.startswith", filter.comment_startswith.as_deref())
            .query_opt("tag", filter.tag.as_deref());
        self.client.get_all_pages(request, DNS_PER_PAGE).await
    }

    pub async fn get(&self, record_id: &str) -> Result<DnsRecord> {
        self.client.get(self.record_path(record_id)).await
    }

    /// Creates a record. Not retried after a 5xx or timeout (it may have
    /// been created); on such an error list and reconcile.
    pub async fn create(&self, record: &DnsRecordInput) -> Result<DnsRecord> {
        self.client.post(self.records_path(), record).await
    }

    /// Overwrites a record (PUT): fields left unset (comment, tags,
    /// proxied) are reset to their defaults.
    pub async fn update(&self, record_id: &str, record: &DnsRecordInput) -> Result<DnsRecord> {
        self.client.put(self.record_path(record_id), record).await
    }

    /// Changes the given fields of a record (PATCH).
    pub async fn patch(&self, record_id: &str, record: &DnsRecordInput) -> Result<DnsRecord> {
        self.client.patch(self.record_path(record_id), record).await
    }

    pub async fn delete(&self, record_id: &str) -> Result<()> {
        self.client.delete(self.record_path(record_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_tags_and_comment_decode_as_empty() {
        let record: DnsRecord = serde_json::from_value(serde_json::json!({
            "id": "r", "type": "A", "name": "a.example.com", "content": "192.0.2.1",
            "proxied": false, "ttl": 1, "comment": null, "tags": null
        }))
        .unwrap();
        assert!(record.tags.is_empty());
        assert_eq!(record.comment, None);
    }
}
