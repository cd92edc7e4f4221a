//! What the suite's servers write, kept for the leak sweep that runs after the whole suite.

use std::path::PathBuf;

/// Where everything the suite's servers write is kept for the leak sweep
/// (`leaks::the_whole_suite_wrote_no_secret_and_no_token`, run by scripts/test after the suite):
/// in-process logs, each binary's output, every problem body and every app's final metrics.
pub fn sweep_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("leak-sweep");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Appends `text` to the sweep file `name`.
pub fn keep_for_sweep(name: &str, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(sweep_dir().join(name)).unwrap();
    writeln!(file, "{text}").unwrap();
}

/// Installs tokenmint's own subscriber for the in-process apps, at debug level for tokenmint and
/// its HTTP layers, writing JSON lines into the sweep directory.
pub(super) fn log_in_process_to_sweep() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(sweep_dir().join(format!("in-process-{}.log", std::process::id())))
            .unwrap();
        let log = tokenmint::telemetry::LogSettings {
            format: tokenmint::telemetry::LogFormat::Json,
            filter: "info,tokenmint=debug,tower_http=debug".into(),
        };
        tokenmint::telemetry::install(&log, std::sync::Mutex::new(file)).expect("the test subscriber installs");
    });
}
