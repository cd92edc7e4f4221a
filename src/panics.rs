//! Panics: nothing should panic, and a panic that happens anyway must not print what it was
//! about, because its message can quote a secret (a value in an `expect`, a formatted
//! credential). The process's panic hook logs where it happened and which thread, never the
//! message, and counts it (`tokenmint_panics_total`); a request's panic is also answered 500
//! (`http::layers`).

use std::sync::atomic::{AtomicU64, Ordering};

static PANICS: AtomicU64 = AtomicU64::new(0);

/// Panics since the process started.
pub fn count() -> u64 {
    PANICS.load(Ordering::Relaxed)
}

/// Replaces the default hook (which prints the message to stderr) for the whole process.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        if tracing::dispatcher::has_been_set() {
            tracing::error!(location, thread, "{NOTE}");
        } else {
            eprintln!("tokenmint: {NOTE} (at {location}, thread {thread})");
        }
    }));
}

/// Says "panicked", as Rust's own hook does, so whoever looks for that word finds it.
const NOTE: &str = "panicked; the message is not printed, since it could quote a secret";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_counted_and_logged_with_its_place_but_not_its_message() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).finish();
        install_hook();
        let before = count();
        let caught = tracing::subscriber::with_default(subscriber, || {
            std::panic::catch_unwind(|| panic!("the secret is hunter2"))
        });
        let _ = std::panic::take_hook();
        assert!(caught.is_err());
        assert_eq!(count(), before + 1);
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains("panicked; the message is not printed") && logged.contains("src/panics.rs:"),
            "{logged}"
        );
        assert!(!logged.contains("hunter2"), "{logged}");
    }
}
