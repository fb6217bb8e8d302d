//! Secrets print as nothing: a password, a private key, a client's bearer token.
#![cfg(feature = "client")]

use crypto_parallel::{PrivateKey, SignatureAlgorithm};
use sdk::vault::Password;
use sdk::{Client, ClientOptions};

#[test]
fn debug_output_never_shows_a_secret() {
    let password = Password::new("correct horse battery staple");
    assert!(!format!("{password:?}").contains("horse"));

    let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let pem = key.to_pem().unwrap();
    let body: String = pem.lines().nth(1).unwrap().to_owned();
    assert!(!format!("{key:?}").contains(&body[..20]));

    let token = "a3f1c0ffee5ecret".repeat(4);
    let options = ClientOptions { token: Some(token.clone()), ca_pem: None };
    assert!(!format!("{options:?}").contains(&token));
    let client = Client::with_options("https://gw.example:8443", &options).unwrap();
    assert!(!format!("{client:?}").contains(&token));
}

#[test]
fn a_token_never_travels_in_clear_text_off_this_machine() {
    let options = ClientOptions { token: Some("t0k3n".into()), ca_pem: None };
    for url in ["http://gw.example:8080", "http://10.0.0.7:8080", "http://[2001:db8::1]:80"] {
        let error = Client::with_options(url, &options).unwrap_err().to_string();
        assert!(error.contains("plain HTTP"), "{url}: {error}");
    }
    for url in [
        "https://gw.example",
        "http://127.0.0.1:8080",
        "http://localhost:8080/",
        "http://[::1]:8080",
    ] {
        assert!(Client::with_options(url, &options).is_ok(), "{url}");
    }
    let empty = ClientOptions { token: Some(" ".into()), ca_pem: None };
    assert!(
        Client::with_options("https://gw.example", &empty)
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
}
