//! DNS records of the environment's Pages hostnames: proxied CNAMEs to each
//! project's `*.pages.dev`. (The API's hostname is a Workers custom domain,
//! whose record Cloudflare keeps itself.)
//!
//! A record this tool creates carries the comment [`comment`]; it never
//! touches a record without it (a plan names such a record as a conflict)
//! unless told to adopt it, and deletes only records with its comment that
//! the description no longer has.

use cloudflare::dns::{DnsRecord, DnsRecordInput, ListDnsRecords, TTL_AUTO};
use cloudflare::Client;

use super::plan::{Action, Field, Fields, Plan};

/// The comment that marks a record as this tool's, per Worker (so per
/// environment).
pub fn comment(script: &str) -> String {
    format!("managed by cargo xtask deploy ({script})")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRecord {
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    pub records: Vec<DnsRecord>,
}

pub async fn read(client: &Client, zone_id: &str) -> anyhow::Result<Live> {
    Ok(Live {
        records: client.dns(zone_id).list(&ListDnsRecords::default()).await?,
    })
}

fn fields(record_type: &str, content: &str, proxied: bool, comment: Option<&str>) -> Fields {
    let mut f = Fields::new();
    f.insert("type".into(), Field::plain(record_type));
    f.insert("content".into(), Field::plain(content));
    f.insert("proxied".into(), Field::plain(proxied.to_string()));
    f.insert("comment".into(), Field::plain(comment.unwrap_or_default()));
    f
}

fn live_fields(record: &DnsRecord) -> Fields {
    fields(
        &record.record_type,
        &record.content,
        record.proxied,
        record.comment.as_deref(),
    )
}

/// A record at a wanted name that this tool did not create.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub name: String,
    pub record_type: String,
}

/// Adds the DNS changes; returns the records in the way (unless `adopt`).
pub fn plan(
    plan: &mut Plan,
    script: &str,
    desired: &[DesiredRecord],
    live: &Live,
    adopt: bool,
) -> Vec<Conflict> {
    let ours = comment(script);
    let mut conflicts = Vec::new();
    for want in desired {
        let at_name: Vec<&DnsRecord> = live
            .records
            .iter()
            .filter(|r| r.name == want.name)
            .collect();
        let managed = at_name
            .iter()
            .find(|r| r.comment.as_deref() == Some(ours.as_str()));
        let current = match (managed, at_name.first()) {
            (Some(record), _) => Some(*record),
            (None, Some(record)) if adopt => Some(*record),
            (None, Some(record)) => {
                conflicts.push(Conflict {
                    name: want.name.clone(),
                    record_type: record.record_type.clone(),
                });
                continue;
            }
            (None, None) => None,
        };
        plan.compare(
            "dns",
            &want.name,
            current.map(live_fields).as_ref(),
            Some(&fields("CNAME", &want.content, true, Some(&ours))),
        );
    }
    for record in &live.records {
        let wanted = desired.iter().any(|d| d.name == record.name);
        if record.comment.as_deref() == Some(ours.as_str()) && !wanted {
            plan.compare("dns", &record.name, Some(&live_fields(record)), None);
        }
    }
    conflicts
}

pub async fn apply(
    client: &Client,
    zone_id: &str,
    script: &str,
    desired: &[DesiredRecord],
    live: &Live,
    changes: &Plan,
) -> anyhow::Result<()> {
    let api = client.dns(zone_id);
    let ours = comment(script);
    for change in changes.changes.iter().filter(|c| c.kind == "dns") {
        let existing = live
            .records
            .iter()
            .filter(|r| r.name == change.name)
            .find(|r| r.comment.as_deref() == Some(ours.as_str()))
            .or_else(|| live.records.iter().find(|r| r.name == change.name));
        match change.action {
            Action::Delete => {
                if let Some(record) = existing {
                    api.delete(&record.id).await?;
                }
            }
            Action::Create | Action::Update => {
                let want = desired
                    .iter()
                    .find(|d| d.name == change.name)
                    .expect("a create or update is of a wanted record");
                let input = DnsRecordInput::new("CNAME", &want.name, &want.content)
                    .proxied(true)
                    .ttl(TTL_AUTO)
                    .comment(&ours);
                match existing {
                    Some(record) if change.action == Action::Update => {
                        api.update(&record.id, &input).await?;
                    }
                    _ => {
                        api.create(&input).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// The records `destroy` removes: every one with this environment's comment.
pub fn plan_destroy(plan: &mut Plan, script: &str, live: &Live) {
    let ours = comment(script);
    for record in &live.records {
        if record.comment.as_deref() == Some(ours.as_str()) {
            plan.compare("dns", &record.name, Some(&live_fields(record)), None);
        }
    }
}

pub async fn destroy(
    client: &Client,
    zone_id: &str,
    script: &str,
    live: &Live,
) -> anyhow::Result<()> {
    let ours = comment(script);
    for record in &live.records {
        if record.comment.as_deref() == Some(ours.as_str()) {
            client.dns(zone_id).delete(&record.id).await?;
        }
    }
    Ok(())
}
