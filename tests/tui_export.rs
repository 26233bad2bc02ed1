//! `:export` writes the keys view to a private file.

#[path = "support/tui_fixture.rs"]
mod fixture;

use fixture::{keys, now};
use keyaudit::tui::action::ExportFormat;
use keyaudit::tui::view::keys::export;

#[test]
fn export_writes_private_csv_and_json_without_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let rows = keys();
    let csv = export(dir.path(), ExportFormat::Csv, &rows, now()).unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with(&keyaudit::export::KEY_COLUMNS.join(",")));
    assert_eq!(text.lines().count(), rows.len() + 1);
    assert!(text.contains(
        "talentgrid,key_0001acm,acme-payroll-sync,Acme Payroll,prod,,active,provider,tg_live_Ab,"
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&csv).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(export(dir.path(), ExportFormat::Csv, &rows, now()).is_err());
    let json = export(dir.path(), ExportFormat::Json, &rows, now()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), rows.len());
    assert_eq!(v[0]["name"], "acme-payroll-sync");
}
