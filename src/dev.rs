//! `--dev`: a working service on loopback with no setup. It generates an app-session secret,
//! uses placeholder Twilio credentials when `TWILIO_*` are unset (and says loudly that Twilio
//! will reject those tokens), and prints a ready-to-paste request.

use base64::Engine;

use crate::env::EnvVars;

/// The variable `config/dev.toml` names for the app-session secret.
pub const SESSION_SECRET_VAR: &str = "TOKENMINT_DEV_SESSION_SECRET";

/// A random 256-bit secret, base64url encoded.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator is unavailable");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Adds an ephemeral session secret to the snapshot, unless one is set.
pub fn prepare_env(env: &mut EnvVars) {
    if !env.is_set(SESSION_SECRET_VAR) {
        env.set(SESSION_SECRET_VAR, random_secret());
    }
}

/// What `serve --dev` prints on start-up.
pub fn banner(public: std::net::SocketAddr, session: &str, placeholder_credentials: bool) -> String {
    let warning = if placeholder_credentials {
        "\n  !! TWILIO_ACCOUNT_SID / TWILIO_API_KEY / TWILIO_API_SECRET are not set: tokens are signed with\n  !! PLACEHOLDER credentials and Twilio WILL REJECT THEM. Set the three variables to use real ones.\n"
    } else {
        ""
    };
    format!(
        "\ntokenmint is running in DEV mode on http://{public} (not for production){warning}\n\
         A dev session for identity \"dev_user\" (valid 24 h). Try:\n\n  \
         curl -s -X POST http://{public}/v1/tokens \\\n    \
         -H 'Authorization: Bearer {session}' \\\n    \
         -H 'Content-Type: application/json' \\\n    \
         -d '{{\"grants\": {{\"video\": {{\"room\": \"standup\"}}}}}}'\n\n\
         Or in a browser, with the example client: http://{public}/dev/#credential={session}\n\
         (Set {SESSION_SECRET_VAR} to keep dev sessions valid across restarts.)\n"
    )
}
