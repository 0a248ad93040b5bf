//! Prometheus remote write 1.0: the protobuf messages of `prometheus/prompb`
//! (`types.proto`, `remote.proto`) and their snappy block encoding.
//!
//! The messages are declared with `prost` derives instead of generated from
//! the `.proto` files so that no `protoc` is needed to build the Worker; the
//! field numbers and types below are those of the upstream definitions.
//! This crate only builds and parses payloads: sending them is the caller's
//! job (a Worker `fetch`, or `reqwest` in tests).

/// `Content-Type` of a remote write request.
pub const CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Encoding` of a remote write request (snappy *block* format).
pub const CONTENT_ENCODING: &str = "snappy";
/// `X-Prometheus-Remote-Write-Version` header name and value for 1.0.
pub const VERSION_HEADER: (&str, &str) = ("X-Prometheus-Remote-Write-Version", "0.1.0");

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one label set and its samples, oldest first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a time in milliseconds since the epoch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl TimeSeries {
    /// A series named `metric` with `labels`, sorted by name as the protocol
    /// requires (Prometheus rejects out-of-order labels).
    pub fn new<'a>(metric: &'a str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut labels: Vec<Label> = std::iter::once(("__name__", metric))
            .chain(labels)
            .map(|(name, value)| Label {
                name: name.to_owned(),
                value: value.to_owned(),
            })
            .collect();
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        TimeSeries {
            labels,
            samples: Vec::new(),
        }
    }

    /// Adds a sample; `timestamp_ms` is milliseconds since the Unix epoch.
    pub fn with_sample(mut self, value: f64, timestamp_ms: i64) -> Self {
        self.samples.push(Sample {
            value,
            timestamp: timestamp_ms,
        });
        self
    }
}

impl WriteRequest {
    /// The request body: protobuf, then snappy block compression.
    pub fn encode_body(&self) -> Vec<u8> {
        let proto = prost::Message::encode_to_vec(self);
        snap::raw::Encoder::new()
            .compress_vec(&proto)
            .expect("snappy compression of an in-memory buffer cannot fail")
    }

    /// Parses a request body produced by [`WriteRequest::encode_body`] (or by
    /// any remote write 1.0 sender).
    pub fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let proto = snap::raw::Decoder::new()
            .decompress_vec(body)
            .map_err(|e| DecodeError(format!("snappy: {e}")))?;
        prost::Message::decode(proto.as_slice()).map_err(|e| DecodeError(format!("protobuf: {e}")))
    }
}

/// A body that is not a valid remote write payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid remote write body: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_named() {
        let series = TimeSeries::new("http_requests_total", [("route", "/x"), ("method", "GET")]);
        let names: Vec<_> = series.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "method", "route"]);
        assert_eq!(series.labels[0].value, "http_requests_total");
    }

    #[test]
    fn body_round_trips() {
        let request = WriteRequest {
            timeseries: vec![
                TimeSeries::new("up", [("job", "api")]).with_sample(1.5, 1_700_000_000_000)
            ],
        };
        let body = request.encode_body();
        assert_eq!(WriteRequest::decode_body(&body).unwrap(), request);
    }

    /// The wire bytes of a known message, worked out by hand from the
    /// protobuf encoding rules, so the field numbers and types cannot drift.
    #[test]
    fn wire_format_matches_prompb() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "a".into(),
                    value: "b".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 2,
                }],
            }],
        };
        let proto = prost::Message::encode_to_vec(&request);
        let expected = [
            0x0a, 0x15, // field 1 (timeseries), length 21
            0x0a, 0x06, // field 1 (labels), length 6
            0x0a, 0x01, b'a', // name
            0x12, 0x01, b'b', // value
            0x12, 0x0b, // field 2 (samples), length 11
            0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, // value: double 1.0
            0x10, 0x02, // timestamp: varint 2
        ];
        assert_eq!(proto, expected);
        // And the body is snappy's block format, not its framed stream format.
        let body = request.encode_body();
        assert_eq!(snap::raw::decompress_len(&body).unwrap(), proto.len());
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(WriteRequest::decode_body(b"not snappy").is_err());
    }
}
