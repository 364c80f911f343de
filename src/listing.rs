//! Listings as the CLI and the web UI hand them out: `--format table|json|csv`, CSV exports.

use clap::ValueEnum;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// An array of objects.
    Json,
    /// RFC 4180, with a header row.
    Csv,
}

/// Rows of named columns. Column names are snake_case: they are the JSON keys and the CSV
/// header; the table shows them in upper case.
pub struct Listing {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Value>>,
}

impl Listing {
    pub fn new(columns: &[&'static str]) -> Listing {
        Listing {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Items that serialise as JSON objects, one row each, the named fields as columns: the
    /// same view feeds a listing and the admin API's JSON.
    pub fn of<T: serde::Serialize>(columns: &[&'static str], items: &[T]) -> Listing {
        let mut l = Listing::new(columns);
        for item in items {
            let object = serde_json::to_value(item).unwrap_or_default();
            l.push(
                columns
                    .iter()
                    .map(|c| object.get(c).cloned().unwrap_or_default())
                    .collect(),
            );
        }
        l
    }

    pub fn push(&mut self, row: Vec<Value>) {
        self.rows.push(row);
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        }
    }

    fn json(&self) -> String {
        let array: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let obj: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(r)
                    .map(|(c, v)| (c.to_string(), v.clone()))
                    .collect();
                Value::Object(obj)
            })
            .collect();
        let mut s = serde_json::to_string_pretty(&array).unwrap_or_else(|_| "[]".into());
        s.push('\n');
        s
    }

    fn csv(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.columns.join(","));
        out.push_str("\r\n");
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|v| csv_cell(&plain(v))).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    fn table(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| c.to_uppercase()).collect();
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|v| one_line(&plain(v))).collect())
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &body {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&" ".repeat(w - c.chars().count() + 2));
                }
            }
            l.trim_end().to_string() + "\n"
        };
        let mut out = line(&header);
        for r in &body {
            out.push_str(&line(r));
        }
        if body.is_empty() {
            out.push_str("(none)\n");
        }
        out
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Quotes as RFC 4180 requires, and defuses spreadsheet formulas: a cell that starts with
/// `= + - @` (or a tab or CR) gets a leading `'`, because some values (the client of a login
/// attempt) come from whoever sent the request.
pub fn csv_cell(s: &str) -> String {
    let defused = match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    };
    if defused.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", defused.replace('"', "\"\""))
    } else {
        defused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Listing {
        let mut l = Listing::new(&["id", "name", "active"]);
        l.push(vec![json!("00D1"), json!("Acme, Inc."), json!(true)]);
        l.push(vec![
            json!("00D2"),
            json!("=cmd|' /C calc'!A0"),
            json!(false),
        ]);
        l
    }

    #[test]
    fn formats() {
        let l = sample();
        let t = l.render(Format::Table);
        assert!(t.starts_with("ID    NAME"), "{t}");
        assert!(t.contains("00D1  Acme, Inc.          true"), "{t}");
        let j: Value = serde_json::from_str(&l.render(Format::Json)).unwrap();
        assert_eq!(j[0]["name"], "Acme, Inc.");
        assert_eq!(j[1]["active"], false);
        let c = l.render(Format::Csv);
        assert_eq!(
            c,
            "id,name,active\r\n00D1,\"Acme, Inc.\",true\r\n00D2,'=cmd|' /C calc'!A0,false\r\n"
        );
    }

    #[test]
    fn empty_table_says_none() {
        let l = Listing::new(&["id"]);
        assert_eq!(l.render(Format::Table), "ID\n(none)\n");
        assert_eq!(l.render(Format::Json), "[]\n");
    }
}
