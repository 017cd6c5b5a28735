//! Conformance cases of the authentication context: what a create says is
//! kept, a recorded authentication raises the level, adds the method and
//! moves the time without touching anything else, and concurrent ones all
//! land.

use std::time::Duration;

use sessiond_engine::{Aal, AuthRequirement, Clock, CreateRequest, Error, Timestamp};

use crate::conformance::Case;

const SEC: Duration = Duration::from_secs(1);

/// The context given at creation comes back from every read; a recorded
/// authentication raises the level (never lowers it), adds its method once
/// and moves `authenticated_at`, and leaves token, data and deadlines alone.
pub async fn authentication_context_is_kept_and_stepped_up(c: Case) {
    let e = c.engine();
    let before = c.clock.now();
    c.clock.advance(SEC);
    let created = e
        .create(CreateRequest {
            user_id: "alice".into(),
            aal: Some(Aal::Aal1),
            amr: vec!["pwd".into(), "pwd".into()],
            authenticated_at: Some(before),
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let s = created.session.clone();
    assert_eq!(s.auth.aal, Aal::Aal1);
    assert_eq!(s.auth.amr, ["pwd"], "each method once");
    assert_eq!(s.auth.authenticated_at, before);
    assert_eq!(e.get(s.id.as_str()).await.unwrap().auth, s.auth);
    let plain = e
        .create(CreateRequest {
            user_id: "bob".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap()
        .session;
    assert_eq!(
        (
            plain.auth.aal,
            plain.auth.amr.len(),
            plain.auth.authenticated_at
        ),
        (Aal::Aal1, 0, plain.created_at),
        "nothing said: aal1 now"
    );

    let need_aal2 = AuthRequirement {
        min_aal: Some(Aal::Aal2),
        max_age: None,
    };
    assert!(matches!(
        e.check_auth(&s, &need_aal2),
        Err(Error::AuthRequirement(_))
    ));
    c.clock.advance(SEC);
    let up = e
        .authenticate(s.id.as_str(), Aal::Aal2, "otp")
        .await
        .unwrap();
    assert_eq!(up.auth.aal, Aal::Aal2);
    assert_eq!(up.auth.amr, ["pwd", "otp"]);
    assert_eq!(up.auth.authenticated_at, c.clock.now());
    assert_eq!(
        (
            &up.data,
            up.expires_at,
            up.absolute_expires_at,
            up.last_seen_at
        ),
        (&s.data, s.expires_at, s.absolute_expires_at, s.last_seen_at),
        "only the authentication changes"
    );
    e.check_auth(&up, &need_aal2).unwrap();
    let seen = e
        .introspect(created.token.expose(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.auth, up.auth, "the same token sees the step-up");

    // A lower level later keeps aal2, adds the method, moves the time.
    c.clock.advance(SEC);
    let again = e
        .authenticate(s.id.as_str(), Aal::Aal1, "pwd")
        .await
        .unwrap();
    assert_eq!(again.auth.aal, Aal::Aal2);
    assert_eq!(again.auth.amr, ["pwd", "otp"]);
    assert_eq!(again.auth.authenticated_at, c.clock.now());
    assert_eq!(e.get(s.id.as_str()).await.unwrap().auth, again.auth);

    // max_age counts from the last authentication.
    let fresh = AuthRequirement {
        min_aal: None,
        max_age: Some(Duration::from_secs(5)),
    };
    e.check_auth(&again, &fresh).unwrap();
    c.clock.advance(6 * SEC);
    assert!(matches!(
        e.check_auth(&again, &fresh),
        Err(Error::AuthRequirement(_))
    ));

    // A JWT-mode session keeps its context through a refresh.
    let jwt = e
        .create_jwt(CreateRequest {
            user_id: "carol".into(),
            aal: Some(Aal::Aal3),
            amr: vec!["hwk".into()],
            ..CreateRequest::default()
        })
        .await
        .unwrap();
    let refreshed = e
        .refresh(jwt.refresh_token.expose(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(refreshed.session.auth, jwt.session.auth);
    let up = e
        .authenticate(jwt.session.id.as_str(), Aal::Aal3, "pwd")
        .await
        .unwrap();
    assert_eq!(up.auth.amr, ["hwk", "pwd"]);
}

/// Only a live session can be authenticated; bad levels and methods are
/// typed errors; a time in the future is refused at create.
pub async fn authenticate_needs_a_live_session_and_good_input(c: Case) {
    let e = c.engine();
    let s = e
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap()
        .session;
    for bad in ["", "has space", &"x".repeat(33)] {
        assert!(
            matches!(
                e.authenticate(s.id.as_str(), Aal::Aal2, bad).await,
                Err(Error::Invalid {
                    field: "method",
                    ..
                })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(e.get(s.id.as_str()).await.unwrap().auth.aal, Aal::Aal1);
    assert_eq!(
        e.authenticate("not-an-id", Aal::Aal2, "otp").await,
        Err(Error::NotFound)
    );
    assert!(
        e.revoke(s.id.as_str(), sessiond_engine::RevokeReason::Logout)
            .await
            .unwrap()
    );
    assert_eq!(
        e.authenticate(s.id.as_str(), Aal::Aal2, "otp").await,
        Err(Error::NotFound),
        "a revoked session stays revoked"
    );
    assert!(e.get(s.id.as_str()).await.is_err());
    let future = Timestamp::from_millis(c.clock.now().as_millis() + 3_600_000);
    assert!(matches!(
        e.create(CreateRequest {
            user_id: "alice".into(),
            authenticated_at: Some(future),
            ..CreateRequest::default()
        })
        .await,
        Err(Error::Invalid {
            field: "authenticated_at",
            ..
        })
    ));
    assert!(matches!(
        e.create(CreateRequest {
            user_id: "alice".into(),
            amr: vec!["ok".into(), "not ok".into()],
            ..CreateRequest::default()
        })
        .await,
        Err(Error::Invalid { field: "amr", .. })
    ));
}

/// Step-ups racing on one session all land: the level is the highest and
/// every method is there.
pub async fn concurrent_step_ups_all_land(c: Case) {
    let e = c.engine();
    let s = e
        .create(CreateRequest {
            user_id: "alice".into(),
            ..CreateRequest::default()
        })
        .await
        .unwrap()
        .session;
    let mut tasks = Vec::new();
    for n in 0..12 {
        let (e, id) = (e.clone(), s.id.clone());
        let aal = if n == 7 { Aal::Aal3 } else { Aal::Aal2 };
        tasks.push(tokio::spawn(async move {
            e.authenticate(id.as_str(), aal, &format!("m{n}")).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = e.get(s.id.as_str()).await.unwrap();
    assert_eq!(got.auth.aal, Aal::Aal3);
    let mut amr = got.auth.amr.clone();
    amr.sort();
    let mut want: Vec<String> = (0..12).map(|n| format!("m{n}")).collect();
    want.sort();
    assert_eq!(amr, want, "no step-up lost");
}
