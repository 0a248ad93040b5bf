//! serde `Deserializer`s over decoded rows, so handlers read results into
//! their own structs (`query_as::<User>()`) and never index columns by
//! hand. A row is a map from column name to cell (or a tuple, by
//! position); a one-column row is also its single value.
//!
//! Conversions a field may ask for, beyond the cell's own type: a `bool`
//! from an integer (TiDB's `BOOLEAN` is `TINYINT`); a `String` from any
//! number, decimal, date or datetime (their text), from bytes that are
//! UTF-8, or from JSON (the document's text); integers and floats from a
//! `DECIMAL`; bytes from text; a Rust enum from `ENUM` text. Anything else
//! is an error that names the column.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, Error as _, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

use crate::decode::{Cell, Column, Row};

/// A row or cell that does not fit the type asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    column: Option<String>,
    message: String,
}

impl DecodeError {
    /// The column whose cell did not fit, when one did.
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn at_column(mut self, column: &Column) -> Self {
        if self.column.is_none() {
            self.column = Some(column.name.clone());
            self.message = format!("{} ({})", self.message, column.type_name);
        }
        self
    }

    pub(crate) fn new(column: Option<String>, message: String) -> Self {
        DecodeError { column, message }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "column `{column}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            column: None,
            message: msg.to_string(),
        }
    }
}

/// Deserializes a whole row.
pub(crate) struct RowDeserializer<'a> {
    row: &'a Row,
}

impl<'a> RowDeserializer<'a> {
    pub(crate) fn new(row: &'a Row) -> Self {
        RowDeserializer { row }
    }

    /// The one cell of a one-column row, for `query_as::<i64>()`.
    fn single(&self, wanted: &str) -> Result<CellDeserializer<'a>, DecodeError> {
        match (self.row.columns(), self.row.cells()) {
            ([column], [cell]) => Ok(CellDeserializer { cell, column }),
            (columns, _) => Err(DecodeError::custom(format!(
                "a row decodes into {wanted} only when it has exactly one column; it has {}",
                columns.len()
            ))),
        }
    }

    fn seq<V: Visitor<'a>>(self, visitor: V, len: Option<usize>) -> Result<V::Value, DecodeError> {
        let cells = self.row.cells().len();
        if let Some(len) = len.filter(|&len| len != cells) {
            return Err(DecodeError::custom(format!(
                "a tuple of {len} cannot hold a row of {cells} columns"
            )));
        }
        let mut access = RowSeq {
            row: self.row,
            next: 0,
        };
        let value = visitor.visit_seq(&mut access)?;
        if access.next < cells {
            return Err(DecodeError::custom(format!(
                "the row has {cells} columns but only {} were read",
                access.next
            )));
        }
        Ok(value)
    }
}

macro_rules! forward_to_single_column {
    ($($method:ident => $what:literal),* $(,)?) => {
        $(fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let cell = self.single($what)?;
            let column = cell.column;
            cell.$method(visitor).map_err(|e| e.at_column(column))
        })*
    };
}

impl<'a> Deserializer<'a> for RowDeserializer<'a> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_map(visitor)
    }

    forward_to_single_column! {
        deserialize_bool => "a bool",
        deserialize_i8 => "an integer",
        deserialize_i16 => "an integer",
        deserialize_i32 => "an integer",
        deserialize_i64 => "an integer",
        deserialize_i128 => "an integer",
        deserialize_u8 => "an integer",
        deserialize_u16 => "an integer",
        deserialize_u32 => "an integer",
        deserialize_u64 => "an integer",
        deserialize_u128 => "an integer",
        deserialize_f32 => "a float",
        deserialize_f64 => "a float",
        deserialize_char => "a char",
        deserialize_str => "a string",
        deserialize_string => "a string",
        deserialize_bytes => "bytes",
        deserialize_byte_buf => "bytes",
        deserialize_option => "an option",
        deserialize_identifier => "an identifier",
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// A sequence is the row's cells, except that a one-column row of bytes
    /// or JSON is that cell's sequence (`query_one_as::<Vec<u8>>`).
    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if let ([column], [cell @ (Cell::Bytes(_) | Cell::Json(_))]) =
            (self.row.columns(), self.row.cells())
        {
            return CellDeserializer { cell, column }
                .deserialize_seq(visitor)
                .map_err(|e| e.at_column(column));
        }
        self.seq(visitor, None)
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.seq(visitor, Some(len))
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.seq(visitor, Some(len))
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(RowMap {
            row: self.row,
            next: 0,
            value: None,
        })
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let cell = self.single("an enum")?;
        let column = cell.column;
        cell.deserialize_enum(name, variants, visitor)
            .map_err(|e| e.at_column(column))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

/// The row's columns by name; of columns sharing a name only the last is
/// given, as serverless-js's object rows keep the last.
struct RowMap<'a> {
    row: &'a Row,
    next: usize,
    value: Option<usize>,
}

impl<'a> MapAccess<'a> for RowMap<'a> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let columns = self.row.columns();
        while self.next < columns.len() {
            let index = self.next;
            self.next += 1;
            let name = &columns[index].name;
            let shadowed = columns[index + 1..].iter().any(|c| &c.name == name);
            if !shadowed {
                self.value = Some(index);
                return seed
                    .deserialize(name.as_str().into_deserializer())
                    .map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let index = self
            .value
            .take()
            .ok_or_else(|| DecodeError::custom("a value was read before its column name"))?;
        let column = &self.row.columns()[index];
        seed.deserialize(CellDeserializer {
            cell: &self.row.cells()[index],
            column,
        })
        .map_err(|e| e.at_column(column))
    }
}

/// The row's cells in column order.
struct RowSeq<'a> {
    row: &'a Row,
    next: usize,
}

impl<'a> SeqAccess<'a> for &mut RowSeq<'a> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some(cell) = self.row.cells().get(self.next) else {
            return Ok(None);
        };
        let column = &self.row.columns()[self.next];
        self.next += 1;
        seed.deserialize(CellDeserializer { cell, column })
            .map(Some)
            .map_err(|e| e.at_column(column))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.row.cells().len() - self.next)
    }
}

/// Deserializes one cell; the column is there for error messages.
pub(crate) struct CellDeserializer<'a> {
    cell: &'a Cell,
    column: &'a Column,
}

impl CellDeserializer<'_> {
    fn mismatch(&self, wanted: &str) -> DecodeError {
        DecodeError::custom(format!("cannot read {} as {wanted}", self.cell.kind()))
    }
}

macro_rules! integer {
    ($($method:ident),*) => {
        $(fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.cell {
                Cell::Int(n) => visitor.visit_i64(*n),
                Cell::UInt(n) => visitor.visit_u64(*n),
                Cell::Decimal(text) => {
                    if let Ok(n) = text.parse::<i64>() {
                        visitor.visit_i64(n)
                    } else if let Ok(n) = text.parse::<u64>() {
                        visitor.visit_u64(n)
                    } else {
                        Err(DecodeError::custom(format!(
                            "the decimal {text} is not an integer"
                        )))
                    }
                }
                Cell::Json(json) => json.$method(visitor).map_err(DecodeError::custom),
                _ => Err(self.mismatch("an integer")),
            }
        })*
    };
}

macro_rules! float {
    ($($method:ident),*) => {
        $(fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.cell {
                Cell::Float(f) => visitor.visit_f64(*f),
                Cell::Int(n) => visitor.visit_i64(*n),
                Cell::UInt(n) => visitor.visit_u64(*n),
                Cell::Decimal(text) => visitor.visit_f64(
                    text.parse().map_err(|_| self.mismatch("a float"))?,
                ),
                Cell::Json(json) => json.$method(visitor).map_err(DecodeError::custom),
                _ => Err(self.mismatch("a float")),
            }
        })*
    };
}

macro_rules! string {
    ($($method:ident),*) => {
        $(fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.cell {
                Cell::Text(text) | Cell::Decimal(text) => visitor.visit_str(text),
                Cell::Int(n) => visitor.visit_string(n.to_string()),
                Cell::UInt(n) => visitor.visit_string(n.to_string()),
                Cell::Float(f) => visitor.visit_string(f.to_string()),
                Cell::Date(d) => visitor.visit_string(d.to_string()),
                Cell::DateTime(t) => visitor.visit_string(t.to_string()),
                Cell::Bytes(b) => match std::str::from_utf8(b) {
                    Ok(text) => visitor.visit_str(text),
                    Err(_) => Err(self.mismatch("a UTF-8 string")),
                },
                Cell::Json(json) => visitor.visit_string(json.to_string()),
                Cell::Null => Err(self.mismatch("a string (use Option<String>)")),
            }
        })*
    };
}

impl<'a> Deserializer<'a> for CellDeserializer<'a> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Null => visitor.visit_unit(),
            Cell::Int(n) => visitor.visit_i64(*n),
            Cell::UInt(n) => visitor.visit_u64(*n),
            Cell::Float(f) => visitor.visit_f64(*f),
            Cell::Decimal(text) | Cell::Text(text) => visitor.visit_str(text),
            Cell::Bytes(b) => visitor.visit_bytes(b),
            Cell::Date(d) => visitor.visit_string(d.to_string()),
            Cell::DateTime(t) => visitor.visit_string(t.to_string()),
            Cell::Json(json) => json.deserialize_any(visitor).map_err(DecodeError::custom),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Int(n) => visitor.visit_bool(*n != 0),
            Cell::UInt(n) => visitor.visit_bool(*n != 0),
            Cell::Json(json) => json.deserialize_bool(visitor).map_err(DecodeError::custom),
            _ => Err(self.mismatch("a bool")),
        }
    }

    integer!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128
    );

    float!(deserialize_f32, deserialize_f64);

    string!(deserialize_char, deserialize_str, deserialize_string);

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Bytes(b) => visitor.visit_bytes(b),
            Cell::Text(text) => visitor.visit_bytes(text.as_bytes()),
            _ => Err(self.mismatch("bytes")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Null => visitor.visit_unit(),
            _ => Err(self.mismatch("()")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// `Vec<u8>` asks for a sequence; bytes cells give their bytes.
    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Bytes(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.iter().copied())),
            Cell::Json(json) => json.deserialize_seq(visitor).map_err(DecodeError::custom),
            _ => Err(self.mismatch("a sequence")),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Json(json) => json.deserialize_map(visitor).map_err(DecodeError::custom),
            _ => Err(self.mismatch("a map (only JSON columns are)")),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Json(json) => json
                .deserialize_struct(name, fields, visitor)
                .map_err(DecodeError::custom),
            _ => Err(self.mismatch("a struct (only JSON columns are)")),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.cell {
            Cell::Text(text) => {
                let text: de::value::StrDeserializer<'_, DecodeError> =
                    text.as_str().into_deserializer();
                text.deserialize_enum(name, variants, visitor)
            }
            Cell::Json(json) => json
                .deserialize_enum(name, variants, visitor)
                .map_err(DecodeError::custom),
            _ => Err(self.mismatch("an enum")),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde::Deserialize;

    use super::*;
    use crate::decode::decode_cell;
    use crate::time::DateTime;

    fn row(columns: &[(&str, &str, Option<&str>)]) -> Row {
        let cols: Arc<[Column]> = columns
            .iter()
            .map(|(name, type_name, _)| Column {
                name: (*name).into(),
                type_name: (*type_name).into(),
                nullable: true,
            })
            .collect();
        let cells = columns
            .iter()
            .map(|(_, t, raw)| decode_cell(t, *raw).unwrap())
            .collect();
        Row::new(cols, cells)
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum State {
        Active,
        Gone,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct User {
        id: u64,
        name: String,
        admin: bool,
        balance: String,
        score: f64,
        avatar: Vec<u8>,
        nick: Option<String>,
        created: DateTime,
        settings: BTreeMap<String, i32>,
        state: State,
    }

    #[test]
    fn a_row_fills_a_struct_by_column_name() {
        let r = row(&[
            ("id", "UNSIGNED BIGINT", Some("18446744073709551615")),
            ("name", "VARCHAR", Some("Zoë")),
            ("admin", "TINYINT", Some("1")),
            ("balance", "DECIMAL", Some("10.50")),
            ("score", "DOUBLE", Some("2.5")),
            ("avatar", "BLOB", Some("00ff")),
            ("nick", "VARCHAR", None),
            ("created", "DATETIME", Some("2024-01-02 03:04:05")),
            ("settings", "JSON", Some(r#"{"a": 1}"#)),
            ("state", "ENUM", Some("active")),
            ("extra", "INT", Some("7")),
        ]);
        let user: User = row_de(&r).unwrap();
        assert_eq!(
            user,
            User {
                id: u64::MAX,
                name: "Zoë".into(),
                admin: true,
                balance: "10.50".into(),
                score: 2.5,
                avatar: vec![0, 255],
                nick: None,
                created: "2024-01-02 03:04:05".parse().unwrap(),
                settings: [("a".to_owned(), 1)].into(),
                state: State::Active,
            }
        );
    }

    fn row_de<T: serde::de::DeserializeOwned>(r: &Row) -> Result<T, DecodeError> {
        r.deserialize()
    }

    #[test]
    fn a_type_mismatch_names_the_column_and_its_type() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Wrong {
            name: i64,
        }
        let err = row_de::<Wrong>(&row(&[("name", "VARCHAR", Some("bob"))])).unwrap_err();
        assert_eq!(err.column(), Some("name"));
        assert!(err.to_string().contains("column `name`"), "{err}");
        assert!(err.to_string().contains("VARCHAR"), "{err}");

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Small {
            n: u8,
        }
        let err = row_de::<Small>(&row(&[("n", "INT", Some("300"))])).unwrap_err();
        assert_eq!(err.column(), Some("n"));

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct NotNull {
            n: i64,
        }
        let err = row_de::<NotNull>(&row(&[("n", "INT", None)])).unwrap_err();
        assert_eq!(err.column(), Some("n"));

        let err = row_de::<User>(&row(&[("id", "INT", Some("1"))])).unwrap_err();
        assert!(err.to_string().contains("missing field `name`"), "{err}");
    }

    #[test]
    fn tuples_read_by_position_and_single_columns_read_bare() {
        let r = row(&[
            ("a", "BIGINT", Some("-5")),
            ("b", "TEXT", Some("x")),
            ("c", "DATE", None),
        ]);
        let t: (i64, String, Option<String>) = row_de(&r).unwrap();
        assert_eq!(t, (-5, "x".into(), None));
        assert!(row_de::<(i64, String)>(&r).is_err());

        let bytes = row(&[("b", "BLOB", Some("00ff"))]);
        assert_eq!(row_de::<Vec<u8>>(&bytes).unwrap(), [0, 255]);
        let list = row(&[("j", "JSON", Some("[1, 2]"))]);
        assert_eq!(row_de::<Vec<i32>>(&list).unwrap(), [1, 2]);
        let words = row(&[("a", "TEXT", Some("x")), ("b", "TEXT", Some("y"))]);
        assert_eq!(row_de::<Vec<String>>(&words).unwrap(), ["x", "y"]);

        let one = row(&[("count(*)", "BIGINT", Some("42"))]);
        assert_eq!(row_de::<i64>(&one).unwrap(), 42);
        assert_eq!(row_de::<String>(&one).unwrap(), "42");
        assert!(row_de::<i64>(&r).is_err());
    }

    #[test]
    fn duplicate_names_keep_the_last_column() {
        #[derive(Deserialize)]
        struct Id {
            id: i64,
        }
        let r = row(&[("id", "INT", Some("1")), ("id", "INT", Some("2"))]);
        assert_eq!(row_de::<Id>(&r).unwrap().id, 2);
    }

    #[test]
    fn json_columns_deserialize_as_their_document() {
        let r = row(&[("doc", "JSON", Some(r#"{"tags": ["a", "b"], "n": 1.5}"#))]);
        #[derive(Deserialize, PartialEq, Debug)]
        struct Doc {
            tags: Vec<String>,
            n: f64,
        }
        #[derive(Deserialize, PartialEq, Debug)]
        struct WithDoc {
            doc: Doc,
        }
        assert_eq!(
            row_de::<WithDoc>(&r).unwrap().doc,
            Doc {
                tags: vec!["a".into(), "b".into()],
                n: 1.5
            }
        );
        // A struct is read from the row's columns, not from a JSON cell.
        assert!(row_de::<Doc>(&r).is_err());
        let text: String = row_de(&r).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!({"tags": ["a", "b"], "n": 1.5})
        );
    }

    #[test]
    fn a_row_deserializes_into_a_json_map() {
        let r = row(&[
            ("id", "BIGINT", Some("1")),
            ("name", "VARCHAR", Some("a")),
            ("gone", "DATETIME", None),
        ]);
        let value: serde_json::Value = row_de(&r).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"id": 1, "name": "a", "gone": null})
        );
    }
}
