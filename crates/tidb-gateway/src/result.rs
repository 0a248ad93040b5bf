//! Rendering a MariaDB result as the SQL API's JSON body: columns named
//! with TiDB's type names, every cell a string or `null`, binary cells in
//! hex.
//!
//! The type names are those TiDB's own Go client side reports
//! (go-sql-driver's `DatabaseTypeName`, the names serverless-js's
//! `ColumnType` lists, `UNSIGNED` first), worked out from MariaDB's column
//! definition: the collation decides binary versus text (63 is `binary`),
//! the byte length decides `TINY`/`MEDIUM`/`LONG` for `BLOB`/`TEXT` (MariaDB
//! sends them all as one type), and MariaDB's `format=json` metadata marks
//! `JSON` (a `LONGTEXT` to MariaDB).

use serde::Serialize;

use crate::mysql::{
    ColumnDef, Outcome, BINARY_COLLATION, ENUM_FLAG, NOT_NULL_FLAG, SET_FLAG, UNSIGNED_FLAG,
};

/// One entry of `types`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: &'static str,
    pub nullable: bool,
}

/// A success body. A query has `types` and `rows`; a statement without a
/// result set has `rowsAffected` and `sLastInsertID` (a string, so 64-bit
/// ids survive JavaScript, as serverless-js 0.2 expects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct SqlResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<Field>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<Vec<Vec<Option<String>>>>,
    #[serde(rename = "rowsAffected", skip_serializing_if = "Option::is_none")]
    pub rows_affected: Option<u64>,
    #[serde(rename = "sLastInsertID", skip_serializing_if = "Option::is_none")]
    pub last_insert_id: Option<String>,
}

impl SqlResult {
    pub fn from_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Rows { columns, rows, .. } => {
                let types: Vec<Field> = columns
                    .iter()
                    .map(|c| Field {
                        name: c.name.clone(),
                        type_name: type_name(c),
                        nullable: c.flags & NOT_NULL_FLAG == 0,
                    })
                    .collect();
                let rows = rows
                    .into_iter()
                    .map(|row| {
                        row.into_iter()
                            .zip(&types)
                            .map(|(cell, field)| cell.map(|raw| encode_cell(field.type_name, raw)))
                            .collect()
                    })
                    .collect();
                SqlResult {
                    types: Some(types),
                    rows: Some(rows),
                    ..SqlResult::default()
                }
            }
            Outcome::Done {
                affected,
                last_insert_id,
                ..
            } => SqlResult {
                rows_affected: Some(affected),
                last_insert_id: Some(last_insert_id.to_string()),
                ..SqlResult::default()
            },
        }
    }
}

const TYPE_DECIMAL: u8 = 0x00;
const TYPE_TINY: u8 = 0x01;
const TYPE_SHORT: u8 = 0x02;
const TYPE_LONG: u8 = 0x03;
const TYPE_FLOAT: u8 = 0x04;
const TYPE_DOUBLE: u8 = 0x05;
const TYPE_NULL: u8 = 0x06;
const TYPE_TIMESTAMP: u8 = 0x07;
const TYPE_LONGLONG: u8 = 0x08;
const TYPE_INT24: u8 = 0x09;
const TYPE_DATE: u8 = 0x0a;
const TYPE_TIME: u8 = 0x0b;
const TYPE_DATETIME: u8 = 0x0c;
const TYPE_YEAR: u8 = 0x0d;
const TYPE_NEWDATE: u8 = 0x0e;
const TYPE_VARCHAR: u8 = 0x0f;
const TYPE_BIT: u8 = 0x10;
const TYPE_JSON: u8 = 0xf5;
const TYPE_NEWDECIMAL: u8 = 0xf6;
const TYPE_ENUM: u8 = 0xf7;
const TYPE_SET: u8 = 0xf8;
const TYPE_TINY_BLOB: u8 = 0xf9;
const TYPE_MEDIUM_BLOB: u8 = 0xfa;
const TYPE_LONG_BLOB: u8 = 0xfb;
const TYPE_BLOB: u8 = 0xfc;
const TYPE_VAR_STRING: u8 = 0xfd;
const TYPE_STRING: u8 = 0xfe;
const TYPE_GEOMETRY: u8 = 0xff;

/// Bytes per character of text results: the gateway's connections use
/// utf8mb4, so MariaDB reports text lengths as characters times 4.
const TEXT_BYTES_PER_CHAR: u32 = 4;

/// TiDB's name for a column's type.
pub fn type_name(c: &ColumnDef) -> &'static str {
    let unsigned = c.flags & UNSIGNED_FLAG != 0;
    let binary = c.collation == BINARY_COLLATION;
    let signed = |signed: &'static str, unsigned_name: &'static str| {
        if unsigned {
            unsigned_name
        } else {
            signed
        }
    };
    if c.format.as_deref() == Some("json") {
        return "JSON";
    }
    match c.type_code {
        TYPE_DECIMAL | TYPE_NEWDECIMAL => "DECIMAL",
        TYPE_TINY => signed("TINYINT", "UNSIGNED TINYINT"),
        TYPE_SHORT => signed("SMALLINT", "UNSIGNED SMALLINT"),
        TYPE_INT24 => signed("MEDIUMINT", "UNSIGNED MEDIUMINT"),
        TYPE_LONG => signed("INT", "UNSIGNED INT"),
        TYPE_LONGLONG => signed("BIGINT", "UNSIGNED BIGINT"),
        TYPE_FLOAT => "FLOAT",
        TYPE_DOUBLE => "DOUBLE",
        TYPE_NULL => "NULL",
        TYPE_TIMESTAMP => "TIMESTAMP",
        TYPE_DATE | TYPE_NEWDATE => "DATE",
        TYPE_TIME => "TIME",
        TYPE_DATETIME => "DATETIME",
        TYPE_YEAR => "YEAR",
        TYPE_BIT => "BIT",
        TYPE_JSON => "JSON",
        TYPE_ENUM => "ENUM",
        TYPE_SET => "SET",
        TYPE_GEOMETRY => "GEOMETRY",
        TYPE_VARCHAR | TYPE_VAR_STRING if binary => "VARBINARY",
        TYPE_VARCHAR | TYPE_VAR_STRING => "VARCHAR",
        TYPE_STRING if c.flags & ENUM_FLAG != 0 => "ENUM",
        TYPE_STRING if c.flags & SET_FLAG != 0 => "SET",
        TYPE_STRING if binary => "BINARY",
        TYPE_STRING => "CHAR",
        TYPE_TINY_BLOB | TYPE_BLOB | TYPE_MEDIUM_BLOB | TYPE_LONG_BLOB => {
            let size = match c.type_code {
                TYPE_TINY_BLOB => 0,
                TYPE_MEDIUM_BLOB => 2,
                TYPE_LONG_BLOB => 3,
                _ => {
                    let chars = if binary {
                        c.length
                    } else {
                        c.length / TEXT_BYTES_PER_CHAR
                    };
                    match chars {
                        0..=0xFF => 0,
                        0x100..=0xFFFF => 1,
                        0x1_0000..=0xFF_FFFF => 2,
                        _ => 3,
                    }
                }
            };
            match (binary, size) {
                (true, 0) => "TINYBLOB",
                (true, 1) => "BLOB",
                (true, 2) => "MEDIUMBLOB",
                (true, _) => "LONGBLOB",
                (false, 0) => "TINYTEXT",
                (false, 1) => "TEXT",
                (false, 2) => "MEDIUMTEXT",
                (false, _) => "LONGTEXT",
            }
        }
        // Unknown codes are reported as text; serverless-js passes them on.
        _ => "VARCHAR",
    }
}

/// A cell as the SQL API sends it: binary types in lowercase hex (what
/// serverless-js's `hexToUint8Array` reads), everything else as the text
/// the database wrote.
pub fn encode_cell(type_name: &str, raw: Vec<u8>) -> String {
    match type_name {
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "BIT"
        | "GEOMETRY" => hex::encode(raw),
        _ => String::from_utf8(raw)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(type_code: u8, flags: u16, collation: u16, length: u32) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            type_code,
            flags,
            collation,
            length,
            format: None,
        }
    }

    const UTF8MB4_BIN: u16 = 46;

    /// Column definitions as MariaDB 10.11 sends them for serverless-js's
    /// type test table (connection charset utf8mb4), and the names TiDB
    /// reports for those columns.
    #[test]
    fn mariadb_columns_get_tidb_type_names() {
        let cases = [
            (column(TYPE_TINY, 0, 63, 4), "TINYINT"),
            (column(TYPE_TINY, UNSIGNED_FLAG, 63, 3), "UNSIGNED TINYINT"),
            (column(TYPE_TINY, 0, 63, 1), "TINYINT"), // BOOLEAN
            (
                column(TYPE_SHORT, UNSIGNED_FLAG, 63, 5),
                "UNSIGNED SMALLINT",
            ),
            (column(TYPE_INT24, 0, 63, 9), "MEDIUMINT"),
            (
                column(TYPE_INT24, UNSIGNED_FLAG, 63, 8),
                "UNSIGNED MEDIUMINT",
            ),
            (column(TYPE_LONG, UNSIGNED_FLAG, 63, 10), "UNSIGNED INT"),
            (column(TYPE_LONGLONG, 0, 63, 20), "BIGINT"),
            (
                column(TYPE_LONGLONG, UNSIGNED_FLAG, 63, 20),
                "UNSIGNED BIGINT",
            ),
            (column(TYPE_FLOAT, 0, 63, 6), "FLOAT"),
            (column(TYPE_DOUBLE, 0, 63, 6), "DOUBLE"),
            (column(TYPE_NEWDECIMAL, 0, 63, 40), "DECIMAL"),
            (column(TYPE_STRING, 0, UTF8MB4_BIN, 4), "CHAR"),
            // utf8mb4_bin text carries the BINARY flag (128) but is text.
            (column(TYPE_VAR_STRING, 128, UTF8MB4_BIN, 40), "VARCHAR"),
            (column(TYPE_STRING, 128, 63, 3), "BINARY"),
            (column(TYPE_VAR_STRING, 128, 63, 16), "VARBINARY"),
            (column(TYPE_BLOB, 16, UTF8MB4_BIN, 1020), "TINYTEXT"),
            (column(TYPE_BLOB, 16, UTF8MB4_BIN, 262_140), "TEXT"),
            (column(TYPE_BLOB, 16, UTF8MB4_BIN, 67_108_860), "MEDIUMTEXT"),
            (column(TYPE_BLOB, 16, UTF8MB4_BIN, u32::MAX), "LONGTEXT"),
            (column(TYPE_BLOB, 144, 63, 255), "TINYBLOB"),
            (column(TYPE_BLOB, 144, 63, 65_535), "BLOB"),
            (column(TYPE_BLOB, 144, 63, 16_777_215), "MEDIUMBLOB"),
            (column(TYPE_BLOB, 144, 63, u32::MAX), "LONGBLOB"),
            (column(TYPE_DATE, 128, 63, 10), "DATE"),
            (column(TYPE_DATETIME, 128, 63, 19), "DATETIME"),
            (column(TYPE_TIMESTAMP, 128, 63, 19), "TIMESTAMP"),
            (column(TYPE_TIME, 128, 63, 10), "TIME"),
            (column(TYPE_YEAR, UNSIGNED_FLAG, 63, 4), "YEAR"),
            (column(TYPE_STRING, ENUM_FLAG, UTF8MB4_BIN, 20), "ENUM"),
            (column(TYPE_STRING, SET_FLAG, UTF8MB4_BIN, 12), "SET"),
            (column(TYPE_BIT, UNSIGNED_FLAG, 63, 64), "BIT"),
            (column(TYPE_NULL, 128, 63, 0), "NULL"),
        ];
        for (c, expected) in cases {
            assert_eq!(type_name(&c), expected, "{c:?}");
        }
        let json = ColumnDef {
            format: Some("json".into()),
            ..column(TYPE_BLOB, 144, UTF8MB4_BIN, u32::MAX)
        };
        assert_eq!(type_name(&json), "JSON");
    }

    #[test]
    fn binary_cells_are_hex_and_text_cells_are_text() {
        assert_eq!(encode_cell("VARBINARY", vec![0x15, 0x20, 0xc5]), "1520c5");
        assert_eq!(
            encode_cell("BIT", vec![0, 0, 0, 0, 0, 0, 0, 0x55]),
            "0000000000000055"
        );
        assert_eq!(encode_cell("BLOB", vec![]), "");
        assert_eq!(encode_cell("VARCHAR", "测试".as_bytes().to_vec()), "测试");
        assert_eq!(encode_cell("DECIMAL", b"-1.50".to_vec()), "-1.50");
    }

    #[test]
    fn result_sets_and_changes_serialize_like_the_sql_api() {
        let rows = Outcome::Rows {
            columns: vec![
                ColumnDef {
                    name: "id".into(),
                    ..column(TYPE_LONGLONG, NOT_NULL_FLAG, 63, 20)
                },
                ColumnDef {
                    name: "b".into(),
                    ..column(TYPE_VAR_STRING, 128, 63, 3)
                },
            ],
            rows: vec![
                vec![Some(b"1".to_vec()), Some(vec![0xff])],
                vec![Some(b"2".to_vec()), None],
            ],
            status: 2,
        };
        assert_eq!(
            serde_json::to_value(SqlResult::from_outcome(rows)).unwrap(),
            serde_json::json!({
                "types": [
                    {"name": "id", "type": "BIGINT", "nullable": false},
                    {"name": "b", "type": "VARBINARY", "nullable": true}
                ],
                "rows": [["1", "ff"], ["2", null]]
            })
        );
        let done = Outcome::Done {
            affected: 2,
            last_insert_id: 18_446_744_073_709_551_615,
            status: 2,
        };
        assert_eq!(
            serde_json::to_value(SqlResult::from_outcome(done)).unwrap(),
            serde_json::json!({"rowsAffected": 2, "sLastInsertID": "18446744073709551615"})
        );
    }
}
