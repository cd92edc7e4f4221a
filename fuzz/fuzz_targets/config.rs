//! The configuration parser and every start-up check: arbitrary text as the `--config` file,
//! then the same assembly `serve` and `check-config` do. A problem is a message, never a panic,
//! and no message carries a secret from the environment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenmint::config::Settings;
use tokenmint::startup::Runtime;
use tokenmint_fuzz::{API_SECRET, SESSION_SECRET, env};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = env();
    let problems = match Settings::from_toml(Some(text), false, &env) {
        Err(problem) => vec![problem],
        Ok(settings) => match Runtime::assemble(settings, &env, false) {
            Err(problems) => problems,
            Ok(runtime) => match runtime.into_state() {
                Ok((state, settings)) => {
                    let _ = tokenmint::http::api_router(state.clone(), &settings.server, &settings.cors);
                    let _ = tokenmint::http::admin_router(state, &settings.server);
                    Vec::new()
                }
                // The audit writer's thread could not start: not the configuration's doing.
                Err(e) => vec![e.to_string()],
            },
        },
    };
    for problem in problems {
        for secret in [API_SECRET, SESSION_SECRET] {
            if !text.contains(secret) {
                assert!(!problem.contains(secret), "a start-up problem carries a secret: {problem}");
            }
        }
    }
});
