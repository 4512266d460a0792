//! CSV files of the Manager: the bulk-creation template (M6) and the address export (M7).
//!
//! Import format, as in the seed: a header row (kept from the template), then one address per
//! row: A = local part (before the `@`), B = password (must pass the strength rule), C =
//! optional forwarding address, D = optional `0` (keep mail after forwarding) or `1` (delete
//! it). Spreadsheets differ in what they save, so the reader accepts `,`, `;` or tab as
//! separator (detected from the header row), a UTF-8 byte-order mark, CRLF line ends and
//! trailing empty columns.

use crate::error::{Error, Result};
use crate::model::AddressView;

/// The columns of the export (M7) after the import's four, for reading only.
pub const EXPORT_EXTRA: [&str; 6] = [
    "address",
    "aliases",
    "storage_used_bytes",
    "storage_quota_bytes",
    "created_at",
    "last_login_at",
];

/// The import template (`postfach address import --template`): its header and one example.
pub fn template() -> String {
    format!(
        "{}\r\ninfo,Choose-A-Str0ng-Password,,0\r\nsales,An0ther-Str0ng-One!,boss@example.org,0\r\n",
        IMPORT_HEADER.join(",")
    )
}

/// The header the template uses (and the export of M7 starts with the same columns).
pub const IMPORT_HEADER: [&str; 4] = [
    "local_part",
    "password",
    "forward_to",
    "delete_after_forward",
];

/// One data row of an import file, as written (validated later, row by row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportLine {
    /// 1-based line number in the file (the header is line 1).
    pub line: usize,
    pub local_part: String,
    pub password: String,
    pub forward_to: String,
    pub delete_after_forward: String,
    /// Non-empty cells beyond column D.
    pub extra_cells: usize,
    /// A quote opened a field that ran over a line end: the row's cells are not what the
    /// user wrote (and may hold the next row's password), so none of them is echoed.
    pub unbalanced_quote: bool,
}

fn detect_delimiter(data: &[u8]) -> u8 {
    let first_line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    let count = |d: u8| first_line.iter().filter(|&&b| b == d).count();
    [b',', b';', b'\t']
        .into_iter()
        .max_by_key(|&d| (count(d), d == b','))
        .unwrap_or(b',')
}

/// Whether the first row is the template's header: its password column names a password in
/// one of the seed's languages. A data row's column B is a real password and never passes this.
fn is_header(cells: &[String]) -> bool {
    let b = cells
        .get(1)
        .map(|c| c.trim().to_lowercase())
        .unwrap_or_default();
    [
        "pass",
        "pwd",
        "kennwort",
        "passwort",
        "mot de passe",
        "motdepasse",
        "password",
    ]
    .iter()
    .any(|w| b.contains(w))
}

/// 1-based line number of the record starting at byte `pos`. The csv crate's own line counter
/// miscounts CRLF files and blank lines, and a record's position may point at the line end of
/// the previous record; so skip line ends and count newlines before the first content byte.
fn line_of(data: &[u8], mut pos: usize) -> usize {
    while pos < data.len() && matches!(data[pos], b'\r' | b'\n') {
        pos += 1;
    }
    1 + data[..pos.min(data.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Splits an import file into rows. File-level problems (not text, no header, too many rows)
/// are errors; problems of one row are left for the row's own report.
pub fn parse_import(data: &[u8], max_rows: usize) -> Result<Vec<ImportLine>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    if std::str::from_utf8(data).is_err() {
        return Err(Error::invalid(
            "CSV file",
            "the file is not UTF-8 text; save it as \"CSV UTF-8\"",
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(detect_delimiter(data))
        .from_reader(data);
    let mut rows = Vec::new();
    let mut header_seen = false;
    // Columns the header names: an export's reading columns are not "extra" cells.
    let mut header_columns = IMPORT_HEADER.len();
    for record in reader.records() {
        let record = record
            .map_err(|e| Error::invalid("CSV file", format!("cannot be read as CSV: {e}")))?;
        let line = record
            .position()
            .map_or(0, |p| line_of(data, p.byte() as usize));
        let cells: Vec<String> = record.iter().map(str::to_string).collect();
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if !header_seen {
            header_columns = cells.iter().filter(|c| !c.trim().is_empty()).count();
            if !is_header(&cells) {
                return Err(Error::invalid(
                    "CSV file",
                    format!(
                        "line {line} must be the header row ({}), as `postfach address import --template` prints it",
                        IMPORT_HEADER.join(",")
                    ),
                ));
            }
            header_seen = true;
            continue;
        }
        if rows.len() == max_rows {
            return Err(Error::invalid(
                "CSV file",
                format!("more than {max_rows} rows; split the file"),
            ));
        }
        // An unclosed quote swallows line ends (and the rows after it): such a row keeps no
        // cell, so its report cannot echo a password.
        let unbalanced_quote = cells.iter().any(|c| c.contains(['\n', '\r']));
        let cells = if unbalanced_quote { Vec::new() } else { cells };
        let cell = |i: usize| cells.get(i).cloned().unwrap_or_default();
        rows.push(ImportLine {
            line,
            local_part: cell(0).trim().to_string(),
            // Passwords are taken as written: spaces inside are allowed, and the strength rule
            // refuses leading or trailing ones with a clear message instead of trimming silently.
            password: cell(1),
            forward_to: cell(2).trim().to_string(),
            delete_after_forward: cell(3).trim().to_string(),
            extra_cells: cells
                .iter()
                .skip(header_columns.max(IMPORT_HEADER.len()))
                .filter(|c| !c.trim().is_empty())
                .count(),
            unbalanced_quote,
        });
    }
    if !header_seen {
        return Err(Error::invalid(
            "CSV file",
            format!(
                "the file is empty; it needs the header row ({})",
                IMPORT_HEADER.join(",")
            ),
        ));
    }
    Ok(rows)
}

/// M7: one row per address with its aliases and forwarding, for spreadsheets.
/// It starts with the import's four columns (M6), the password left empty (it is never
/// stored in clear), so that an export, with passwords filled in, can be imported again (into
/// another mail service, say); the columns after them are for reading and are ignored by the
/// import.
pub fn export(addresses: &[AddressView]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = IMPORT_HEADER.iter().copied().chain(EXPORT_EXTRA);
    // Writing to a Vec cannot fail.
    w.write_record(header).expect("write to memory");
    for a in addresses {
        w.write_record([
            a.local_part.as_str(),
            "",
            &a.forward_to.join(" "),
            if a.forward_keep_copy { "0" } else { "1" },
            a.address.as_str(),
            &a.aliases.join(" "),
            &a.storage_used_bytes.to_string(),
            &a.storage_quota_bytes.to_string(),
            &a.created_at,
            a.last_login_at.as_deref().unwrap_or(""),
        ])
        .expect("write to memory");
    }
    String::from_utf8(w.into_inner().expect("flush to memory")).expect("CSV of UTF-8 fields")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_template_with_semicolons_bom_and_crlf() {
        let data = "\u{feff}Adresse;Passwort;Weiterleitung;Löschen\r\njean.dupont;G7#kq2LmWz;;\r\n\r\ninfo;Xy9!abcdefg;boss@example.org;1\r\n";
        let rows = parse_import(data.as_bytes(), 100).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].local_part, "jean.dupont");
        assert_eq!(rows[0].password, "G7#kq2LmWz");
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].forward_to, "boss@example.org");
        assert_eq!(rows[1].delete_after_forward, "1");
    }

    #[test]
    fn quoted_fields_and_extra_columns() {
        let data = "local_part,password,forward_to,delete_after_forward\n\"a\",\"pa,ss \"\"word\"\"X1\",,,surplus\n";
        let rows = parse_import(data.as_bytes(), 100).unwrap();
        assert_eq!(rows[0].password, "pa,ss \"word\"X1");
        assert_eq!(rows[0].extra_cells, 1);
    }

    #[test]
    fn file_level_errors() {
        for (data, needle) in [
            (&b"jean;G7#kq2LmWz\n"[..], "header row"),
            (&b""[..], "empty"),
            (&b"\xff\xfe\x00a"[..], "UTF-8"),
        ] {
            let e = parse_import(data, 100).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let many = format!("local_part,password\n{}", "a,b\n".repeat(3));
        assert!(
            parse_import(many.as_bytes(), 2)
                .unwrap_err()
                .to_string()
                .contains("more than 2 rows")
        );
    }
}
