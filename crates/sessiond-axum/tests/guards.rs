//! The authentication guards on every backend: `RequireAal<2>` refuses a
//! first-factor session with RFC 9470's challenge and lets it through after
//! a step-up; `RequireRecentAuth<2>` refuses once the login is older.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Call, DESKTOP_UA, Harness};
use sessiond_engine::Aal;

layer_tests!(
    guards_need_the_level_and_a_recent_login,
    a_login_records_its_level_and_a_step_up_raises_it
);

async fn guards_need_the_level_and_a_recent_login(h: Harness) {
    let (token, _) = h.login("alice", DESKTOP_UA).await;
    let r = h.send(Call::get("/second-factor").cookie(&token)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_user_authentication") && challenge.contains("aal2"),
        "{challenge}"
    );
    assert_eq!(
        h.send(Call::get("/recent").cookie(&token)).await.status,
        200
    );
    // Without a session the guard is a plain 401.
    let r = h.send(Call::get("/second-factor")).await;
    assert_eq!(r.status, 401);
    assert!(
        !r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient")
    );

    let id = h.send(Call::get("/me").cookie(&token)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.engine.authenticate(&id, Aal::Aal2, "otp").await.unwrap();
    let r = h.send(Call::get("/second-factor").cookie(&token)).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "alice"));

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = h.send(Call::get("/recent").cookie(&token)).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("max_age=\"2\"")
    );
    h.engine.authenticate(&id, Aal::Aal1, "pwd").await.unwrap();
    assert_eq!(
        h.send(Call::get("/recent").cookie(&token)).await.status,
        200
    );
}

async fn a_login_records_its_level_and_a_step_up_raises_it(h: Harness) {
    // A login after a second factor starts at aal2 with both methods.
    let r = h
        .send(
            Call::post("/login-mfa")
                .header("user-agent", DESKTOP_UA)
                .form("user=bob&role="),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"aal": "aal2", "amr": ["pwd", "otp"]})
    );
    let token = r.new_token().expect("login sets the cookie");
    let r = h.send(Call::get("/second-factor").cookie(&token)).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "bob"));

    // A first-factor login steps up through the layer; the guard passes
    // within that request and on the next one, and the store has it.
    let (token, csrf) = h.login("carol", DESKTOP_UA).await;
    assert_eq!(
        h.send(Call::get("/second-factor").cookie(&token))
            .await
            .status,
        401
    );
    let r = h
        .send(Call::post("/step-up").cookie(&token).csrf(&csrf))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"aal": "aal2", "amr": ["otp"]}));
    let r = h.send(Call::get("/second-factor").cookie(&token)).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "carol"));
    let id = h.send(Call::get("/me").cookie(&token)).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = h.engine.get(&id).await.unwrap();
    assert_eq!(stored.auth.aal, Aal::Aal2);
    assert_eq!(stored.auth.amr, vec!["otp".to_owned()]);

    // A step-up without a session is refused like any signed-in route.
    let r = h.send(Call::post("/step-up")).await;
    assert_eq!(r.status, 401, "{}", r.body);
}
