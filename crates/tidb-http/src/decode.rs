//! Turning the SQL API's answer into typed values: every cell arrives as a
//! string or `null` and is decoded by its column's type name, as
//! serverless-js's `src/decode.ts` does, except that Rust keeps what
//! JavaScript numbers cannot: `BIGINT` is an `i64`, `UNSIGNED BIGINT` a
//! `u64`, and `DECIMAL` stays exact text instead of becoming a float.
//!
//! | type names | cell |
//! | --- | --- |
//! | `TINYINT` ... `INT` (signed or `UNSIGNED`), `YEAR`, `BIGINT` | [`Cell::Int`] |
//! | `UNSIGNED BIGINT` | [`Cell::UInt`] |
//! | `FLOAT`, `DOUBLE` | [`Cell::Float`] |
//! | `DECIMAL` | [`Cell::Decimal`] (exact text) |
//! | `CHAR`, `VARCHAR`, `*TEXT`, `ENUM`, `SET`, `TIME`, anything unknown | [`Cell::Text`] |
//! | `DATE` | [`Cell::Date`] |
//! | `DATETIME`, `TIMESTAMP` | [`Cell::DateTime`] |
//! | `BINARY`, `VARBINARY`, `*BLOB`, `BIT` (sent as hex) | [`Cell::Bytes`] |
//! | `JSON` | [`Cell::Json`] |
//!
//! `BOOLEAN` columns are reported as `TINYINT` and decode to 0 or 1 (a
//! `bool` field accepts them).

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::de::{DecodeError, RowDeserializer};
use crate::time::{Date, DateTime};

/// A result column as the SQL API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// TiDB's type name, such as `BIGINT`, `UNSIGNED INT` or `VARCHAR`.
    pub type_name: String,
    pub nullable: bool,
}

/// One decoded cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A `DECIMAL`, exactly as the server wrote it.
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(Date),
    DateTime(DateTime),
    Json(serde_json::Value),
}

impl Cell {
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// What kind of cell this is, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "NULL",
            Cell::Int(_) => "an integer",
            Cell::UInt(_) => "an unsigned integer",
            Cell::Float(_) => "a float",
            Cell::Decimal(_) => "a decimal",
            Cell::Text(_) => "text",
            Cell::Bytes(_) => "bytes",
            Cell::Date(_) => "a date",
            Cell::DateTime(_) => "a datetime",
            Cell::Json(_) => "JSON",
        }
    }
}

/// What a column's cells decode to, by its type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoding {
    Int,
    UInt,
    Float,
    Decimal,
    Date,
    DateTime,
    Bytes,
    Json,
}

/// Every type name the SQL API sends that the decoder reads as something
/// other than text, and what it reads it as. One table for the decoder and
/// for the fuzzing that must name every one of them
/// (`testing::DECODED_TYPE_NAMES`).
pub(crate) const DECODINGS: [(&str, Decoding); 25] = [
    ("TINYINT", Decoding::Int),
    ("UNSIGNED TINYINT", Decoding::Int),
    ("SMALLINT", Decoding::Int),
    ("UNSIGNED SMALLINT", Decoding::Int),
    ("MEDIUMINT", Decoding::Int),
    ("UNSIGNED MEDIUMINT", Decoding::Int),
    ("INT", Decoding::Int),
    ("UNSIGNED INT", Decoding::Int),
    ("YEAR", Decoding::Int),
    ("BIGINT", Decoding::Int),
    ("UNSIGNED BIGINT", Decoding::UInt),
    ("FLOAT", Decoding::Float),
    ("DOUBLE", Decoding::Float),
    ("DECIMAL", Decoding::Decimal),
    ("DATE", Decoding::Date),
    ("DATETIME", Decoding::DateTime),
    ("TIMESTAMP", Decoding::DateTime),
    ("BLOB", Decoding::Bytes),
    ("TINYBLOB", Decoding::Bytes),
    ("MEDIUMBLOB", Decoding::Bytes),
    ("LONGBLOB", Decoding::Bytes),
    ("BINARY", Decoding::Bytes),
    ("VARBINARY", Decoding::Bytes),
    ("BIT", Decoding::Bytes),
    ("JSON", Decoding::Json),
];

/// How cells of type `type_name` decode; `None` for text. Looked up once
/// per column of a result ([`decode_cell_as`]), not per cell.
pub(crate) fn decoding(type_name: &str) -> Option<Decoding> {
    DECODINGS
        .iter()
        .find(|(name, _)| *name == type_name)
        .map(|&(_, decoding)| decoding)
}

/// Decodes one raw cell of a column of type `type_name`. The error says
/// what was wrong, never the whole value.
#[cfg(test)]
pub(crate) fn decode_cell(type_name: &str, raw: Option<&str>) -> Result<Cell, String> {
    decode_cell_as(type_name, decoding(type_name), raw)
}

/// [`decode_cell`] for a column whose type name was looked up already
/// (`decoding`, from [`decoding`]).
pub(crate) fn decode_cell_as(
    type_name: &str,
    decoding: Option<Decoding>,
    raw: Option<&str>,
) -> Result<Cell, String> {
    let Some(raw) = raw else {
        return Ok(Cell::Null);
    };
    let bad = |what: &str| format!("{type_name} cell is not {what}");
    Ok(match decoding {
        Some(Decoding::Int) => Cell::Int(raw.parse().map_err(|_| bad("an integer"))?),
        Some(Decoding::UInt) => Cell::UInt(raw.parse().map_err(|_| bad("an unsigned integer"))?),
        Some(Decoding::Float) => Cell::Float(raw.parse().map_err(|_| bad("a number"))?),
        Some(Decoding::Decimal) => {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            let valid = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && digits.bytes().filter(|&b| b == b'.').count() <= 1;
            if !valid {
                return Err(bad("a decimal number"));
            }
            Cell::Decimal(raw.to_owned())
        }
        Some(Decoding::Date) => Cell::Date(raw.parse().map_err(|_| bad("a YYYY-MM-DD date"))?),
        Some(Decoding::DateTime) => Cell::DateTime(
            raw.parse()
                .map_err(|_| bad("a YYYY-MM-DD HH:MM:SS datetime"))?,
        ),
        Some(Decoding::Bytes) => {
            Cell::Bytes(hex::decode(raw).map_err(|_| bad("hex-encoded bytes"))?)
        }
        Some(Decoding::Json) => {
            Cell::Json(serde_json::from_str(raw).map_err(|e| format!("{}: {e}", bad("JSON")))?)
        }
        None => Cell::Text(raw.to_owned()),
    })
}

/// One result row: its cells in column order, with the columns beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[Column]>,
    cells: Vec<Cell>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[Column]>, cells: Vec<Cell>) -> Self {
        Row { columns, cells }
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The cell of the column called `name` (the last one, if several
    /// share the name, as serverless-js's object rows keep the last).
    pub fn get(&self, name: &str) -> Option<&Cell> {
        self.columns
            .iter()
            .rposition(|c| c.name == name)
            .map(|i| &self.cells[i])
    }

    /// Deserializes the row: into a struct or map by column name, into a
    /// tuple by position, or into a plain value when it has one column.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        T::deserialize(RowDeserializer::new(self))
    }
}

/// What one statement returned.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub(crate) statement: String,
    pub(crate) columns: Arc<[Column]>,
    pub(crate) rows: Vec<Row>,
    pub(crate) rows_affected: Option<u64>,
    pub(crate) last_insert_id: Option<u64>,
}

impl QueryResult {
    /// The statement as written, before parameters were bound in.
    pub fn statement(&self) -> &str {
        &self.statement
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn into_rows(self) -> Vec<Row> {
        self.rows
    }

    /// Rows changed by `INSERT`/`UPDATE`/`DELETE`; `None` for a query.
    pub fn rows_affected(&self) -> Option<u64> {
        self.rows_affected
    }

    /// The `AUTO_INCREMENT` value the statement generated (`Some(0)` when
    /// it generated none); `None` for a query.
    pub fn last_insert_id(&self) -> Option<u64> {
        self.last_insert_id
    }

    /// The `AUTO_INCREMENT` id an `INSERT` of one row generated. An
    /// error when the answer has none (no `lastInsertID`, or 0): a row
    /// inserted into a table with such a column always gets one, so the
    /// answer is not what the service sends, and the row must not be
    /// referred to by an id made up here.
    pub fn inserted_id(&self) -> Result<u64, crate::Error> {
        match self.last_insert_id {
            Some(id) if id > 0 => Ok(id),
            _ => Err(crate::Error::new(
                None,
                crate::ErrorKind::Protocol("the insert's answer has no lastInsertID".into()),
            )),
        }
    }

    /// Deserializes every row (see [`Row::deserialize`]).
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<Vec<T>, crate::Error> {
        self.rows
            .iter()
            .map(|row| {
                row.deserialize()
                    .map_err(|e| crate::Error::decode(&self.statement, e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(type_name: &str, raw: &str) -> Cell {
        decode_cell(type_name, Some(raw)).unwrap()
    }

    /// A name twice in the table would shadow its second decoding.
    #[test]
    fn each_type_name_has_one_decoding() {
        let mut names: Vec<&str> = DECODINGS.iter().map(|(name, _)| *name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DECODINGS.len());
    }

    #[test]
    fn integers_decode_without_precision_loss() {
        for t in [
            "TINYINT",
            "UNSIGNED TINYINT",
            "SMALLINT",
            "MEDIUMINT",
            "INT",
            "YEAR",
        ] {
            assert_eq!(cell(t, "-12"), Cell::Int(-12), "{t}");
        }
        assert_eq!(cell("UNSIGNED INT", "4294967295"), Cell::Int(4294967295));
        assert_eq!(cell("BIGINT", "-9223372036854775808"), Cell::Int(i64::MIN));
        assert_eq!(
            cell("UNSIGNED BIGINT", "18446744073709551615"),
            Cell::UInt(u64::MAX)
        );
        assert!(decode_cell("BIGINT", Some("12a")).is_err());
        assert!(decode_cell("BIGINT", Some("18446744073709551615")).is_err());
    }

    #[test]
    fn decimals_stay_exact_text_and_floats_parse() {
        assert_eq!(
            cell("DECIMAL", "123456789012.1234567890120000000"),
            Cell::Decimal("123456789012.1234567890120000000".into())
        );
        assert_eq!(cell("DECIMAL", "-0.50"), Cell::Decimal("-0.50".into()));
        assert!(decode_cell("DECIMAL", Some("1e5")).is_err());
        assert_eq!(cell("FLOAT", "123.46"), Cell::Float(123.46));
        assert_eq!(cell("DOUBLE", "-1.5e-7"), Cell::Float(-1.5e-7));
    }

    #[test]
    fn strings_and_unknown_types_stay_text() {
        for t in [
            "CHAR",
            "VARCHAR",
            "TINYTEXT",
            "TEXT",
            "MEDIUMTEXT",
            "LONGTEXT",
            "ENUM",
            "SET",
            "TIME",
            "GEOMETRY",
        ] {
            assert_eq!(cell(t, "测试"), Cell::Text("测试".into()), "{t}");
        }
        assert_eq!(cell("TIME", "-838:59:59"), Cell::Text("-838:59:59".into()));
    }

    #[test]
    fn binary_types_are_hex_as_the_gateway_sends_them() {
        for t in [
            "BINARY",
            "VARBINARY",
            "TINYBLOB",
            "BLOB",
            "MEDIUMBLOB",
            "LONGBLOB",
        ] {
            assert_eq!(
                cell(t, "1520c5"),
                Cell::Bytes(vec![0x15, 0x20, 0xc5]),
                "{t}"
            );
        }
        // BIT(64) b'01010101', as serverless-js's type test reads it back.
        assert_eq!(
            cell("BIT", "0000000000000055"),
            Cell::Bytes(vec![0, 0, 0, 0, 0, 0, 0, 0x55])
        );
        assert_eq!(cell("BLOB", "ABCDEF"), Cell::Bytes(vec![0xab, 0xcd, 0xef]));
        assert_eq!(cell("BLOB", ""), Cell::Bytes(vec![]));
        assert!(decode_cell("BLOB", Some("abc")).is_err());
    }

    #[test]
    fn dates_json_and_null() {
        assert_eq!(
            cell("DATE", "1977-01-01"),
            Cell::Date(Date::new(1977, 1, 1).unwrap())
        );
        for t in ["DATETIME", "TIMESTAMP"] {
            let Cell::DateTime(at) = cell(t, "1973-12-30 15:30:00") else {
                panic!("{t}")
            };
            assert_eq!(at.to_string(), "1973-12-30 15:30:00");
        }
        assert_eq!(
            cell("JSON", r#"{"a": 1, "b": "2"}"#),
            Cell::Json(serde_json::json!({"a": 1, "b": "2"}))
        );
        assert!(decode_cell("JSON", Some("{")).is_err());
        for t in ["BIGINT", "JSON", "BLOB", "DATETIME", "NULL"] {
            assert_eq!(decode_cell(t, None), Ok(Cell::Null));
        }
    }

    #[test]
    fn get_finds_the_last_column_of_a_name() {
        let columns: Arc<[Column]> = ["id", "id"]
            .iter()
            .map(|n| Column {
                name: (*n).into(),
                type_name: "INT".into(),
                nullable: false,
            })
            .collect();
        let row = Row::new(columns, vec![Cell::Int(1), Cell::Int(2)]);
        assert_eq!(row.get("id"), Some(&Cell::Int(2)));
        assert_eq!(row.get("nope"), None);
    }
}
