//! The audit log as a file: CSV for spreadsheets, JSON Lines for log tools.

use crate::{api::views::AuditView, error::ApiError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    JsonLines,
}

impl Format {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::JsonLines),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/jsonl",
        }
    }

    pub(crate) fn attachment(self) -> &'static str {
        match self {
            Format::Csv => "attachment; filename=\"stackgate-audit.csv\"",
            Format::JsonLines => "attachment; filename=\"stackgate-audit.jsonl\"",
        }
    }
}

/// A spreadsheet runs a cell that starts with one of these as a formula: a username or
/// target an attacker chose (`=HYPERLINK(...)`) must stay text.
fn defuse(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

pub(crate) fn render(format: Format, records: &[AuditView]) -> Result<Vec<u8>, ApiError> {
    let internal = |e: &dyn std::fmt::Display| ApiError::Internal(format!("audit export: {e}"));
    match format {
        Format::JsonLines => {
            let mut out = Vec::new();
            for record in records {
                serde_json::to_writer(&mut out, record).map_err(|e| internal(&e))?;
                out.push(b'\n');
            }
            Ok(out)
        }
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer
                .write_record([
                    "id",
                    "at",
                    "actor",
                    "actor_id",
                    "action",
                    "target_type",
                    "target",
                    "target_id",
                    "source_ip",
                    "detail",
                ])
                .map_err(|e| internal(&e))?;
            for r in records {
                let at =
                    r.at.format(&time::format_description::well_known::Rfc3339)
                        .map_err(|e| internal(&e))?;
                let detail = if r.detail.is_null() {
                    String::new()
                } else {
                    r.detail.to_string()
                };
                writer
                    .write_record([
                        r.id.to_string(),
                        at,
                        defuse(&r.actor),
                        r.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                        defuse(&r.action),
                        defuse(&r.target_type),
                        defuse(r.target.as_deref().unwrap_or_default()),
                        defuse(r.target_id.as_deref().unwrap_or_default()),
                        r.source_ip.clone().unwrap_or_default(),
                        defuse(&detail),
                    ])
                    .map_err(|e| internal(&e))?;
            }
            writer.into_inner().map_err(|e| internal(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stackgate_identity::{OffsetDateTime, Uuid};

    fn record(actor: &str, target: &str) -> AuditView {
        AuditView {
            id: Uuid::now_v7(),
            at: OffsetDateTime::UNIX_EPOCH,
            actor_id: None,
            actor: actor.into(),
            action: "user.create".into(),
            target_type: "user".into(),
            target_id: None,
            target: Some(target.into()),
            detail: serde_json::json!({ "groups": ["a,b", "say \"hi\""] }),
            source_ip: Some("127.0.0.1".into()),
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let out = render(Format::Csv, &[record("=HYPERLINK(\"x\")", "ana")]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(&row[2], "'=HYPERLINK(\"x\")");
        assert_eq!(&row[6], "ana");
        assert_eq!(&row[9], r#"{"groups":["a,b","say \"hi\""]}"#);
        assert_eq!(&row[1], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn json_lines_are_one_object_per_line() {
        let out = render(
            Format::JsonLines,
            &[record("ana", "bo"), record("cy", "di")],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["actor"], "cy");
    }
}
