//! Zones: finding the zone id for a domain name.

use serde::{Deserialize, Serialize};

use crate::client::{seg, Client, Request};
use crate::error::Result;

/// The zone fields the deploy tool reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<ZoneAccount>,
    #[serde(default, deserialize_with = "crate::envelope::null_as_empty")]
    pub name_servers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneAccount {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Zone operations; see [`Client::zones`].
#[derive(Debug, Clone, Copy)]
pub struct Zones<'c> {
    client: &'c Client,
}

impl Client {
    pub fn zones(&self) -> Zones<'_> {
        Zones { client: self }
    }
}

/// The schema's maximum `per_page` for `GET /zones`.
const ZONES_PER_PAGE: u32 = 50;

impl Zones<'_> {
    /// The zone with exactly this name (`GET /zones?name=`), if the token
    /// can see it.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Zone>> {
        let zones: Vec<Zone> = self
            .client
            .get_all_pages(Request::get("/zones").query("name", name), ZONES_PER_PAGE)
            .await?;
        Ok(zones
            .into_iter()
            .find(|z| z.name.eq_ignore_ascii_case(name)))
    }

    /// All zones the token can see.
    pub async fn list(&self) -> Result<Vec<Zone>> {
        self.client
            .get_all_pages(Request::get("/zones"), ZONES_PER_PAGE)
            .await
    }

    /// `GET /zones/{zone_id}`. An id the token cannot see answers 7003
    /// ([`crate::Error::Unroutable`]), as a mistyped one does: the API does
    /// not tell the two apart, so neither is reported as "not found".
    pub async fn get(&self, zone_id: &str) -> Result<Zone> {
        self.client.get(format!("/zones/{}", seg(zone_id))).await
    }
}
