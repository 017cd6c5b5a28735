//! Conformance cases of JWT-mode sessions: refresh-token rotation, the reuse
//! grace for racing clients, reuse detection, and expiry. Run by every store
//! through [`crate::conformance_tests!`] like the rest of the suite.

use std::time::Duration;

use sessiond_engine::{Clock, CreateRequest, Error, Mode, RefreshToken, Refreshed, RevokeReason};

use crate::conformance::Case;

const GRACE: Duration = Duration::from_secs(10);
const MIN: Duration = Duration::from_secs(60);

fn user(id: &str) -> CreateRequest {
    CreateRequest {
        user_id: id.into(),
        ..CreateRequest::default()
    }
}

/// A JWT-mode session refreshes into a new token each time; each refresh
/// records activity and slides the idle deadline.
pub async fn refresh_rotates_and_records_activity(c: Case) {
    let e = c.engine();
    let created = e.create_jwt(user("alice")).await.unwrap();
    let id = created.session.id.clone();
    assert_eq!(created.session.mode, Mode::Jwt);
    assert_eq!(e.get(id.as_str()).await.unwrap().mode, Mode::Jwt);
    let t0 = created.refresh_token;

    c.clock.advance(5 * MIN);
    let r1 = e.refresh(t0.expose(), GRACE).await.unwrap();
    assert!(r1.rotated);
    assert_eq!(r1.generation, 1);
    assert_eq!(r1.session.id, id);
    assert_eq!(r1.issued_at, c.clock.now());
    assert_eq!(r1.session.last_seen_at, c.clock.now());
    assert_eq!(r1.session.expires_at, c.clock.now().plus(30 * MIN));
    assert_ne!(r1.refresh_token.hash(), t0.hash());
    let stored = e.get(id.as_str()).await.unwrap();
    assert_eq!(stored.last_seen_at, c.clock.now());
    assert_eq!(stored.expires_at, r1.session.expires_at);

    c.clock.advance(MIN);
    let r2 = e.refresh(r1.refresh_token.expose(), GRACE).await.unwrap();
    assert!(r2.rotated);
    assert_eq!(r2.generation, 2);
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
    // Refresh tokens are not session tokens and the other way round.
    assert!(matches!(
        e.introspect(r2.refresh_token.expose(), false).await,
        Err(Error::Invalid { .. })
    ));
    let opaque = e.create(user("alice")).await.unwrap();
    assert!(matches!(
        e.refresh(opaque.token.expose(), GRACE).await,
        Err(Error::Invalid { .. })
    ));
}

/// The previous token presented again within the grace period gets exactly
/// what its rotation produced and changes nothing; once its successor has
/// rotated too, it is reuse.
pub async fn replay_within_grace_returns_the_same_successor(c: Case) {
    let e = c.engine();
    let t0 = e.create_jwt(user("alice")).await.unwrap().refresh_token;
    let r1 = e.refresh(t0.expose(), GRACE).await.unwrap();
    c.clock.advance(Duration::from_secs(3));
    let replay = e.refresh(t0.expose(), GRACE).await.unwrap();
    assert!(!replay.rotated);
    assert_eq!(replay.refresh_token.expose(), r1.refresh_token.expose());
    assert_eq!(replay.generation, r1.generation);
    assert_eq!(replay.issued_at, r1.issued_at);
    assert_eq!(replay.session.id, r1.session.id);
    // The successor still works and rotates.
    let r2 = e.refresh(r1.refresh_token.expose(), GRACE).await.unwrap();
    assert!(r2.rotated);
    assert_eq!(r2.generation, 2);
    // t0 is two generations old now: reuse, the session ends.
    assert!(matches!(
        e.refresh(t0.expose(), GRACE).await,
        Err(Error::RefreshTokenReused)
    ));
    assert!(matches!(
        e.get(r1.session.id.as_str()).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        e.refresh(r2.refresh_token.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
}

/// After the grace period a retired token revokes the whole session; nothing
/// of it keeps working.
pub async fn reuse_after_grace_revokes_the_session(c: Case) {
    let e = c.engine();
    let created = e.create_jwt(user("alice")).await.unwrap();
    let other = e.create_jwt(user("alice")).await.unwrap();
    let t0 = created.refresh_token;
    let r1 = e.refresh(t0.expose(), GRACE).await.unwrap();
    c.clock.advance(GRACE);
    assert!(matches!(
        e.refresh(t0.expose(), GRACE).await,
        Err(Error::RefreshTokenReused)
    ));
    assert!(matches!(
        e.get(created.session.id.as_str()).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        e.refresh(r1.refresh_token.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        e.refresh(t0.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    // The user's other session is untouched.
    let listed = e.list_user("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, other.session.id);
    assert!(
        e.refresh(other.refresh_token.expose(), GRACE)
            .await
            .unwrap()
            .rotated
    );
}

/// 500 concurrent refreshes presenting the same token: exactly one rotates,
/// every other gets the same successor back (grace), and the session is
/// neither lost nor duplicated.
pub async fn concurrent_refreshes_have_one_winner(c: Case) {
    let e = c.engine();
    let created = e.create_jwt(user("alice")).await.unwrap();
    let token = created.refresh_token.expose().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let (e, token) = (e.clone(), token.clone());
        tasks.push(tokio::spawn(async move { e.refresh(&token, GRACE).await }));
    }
    let mut results: Vec<Refreshed> = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.rotated).count(), 1);
    let winner = results.iter().find(|r| r.rotated).unwrap();
    for r in &results {
        assert_eq!(r.refresh_token.expose(), winner.refresh_token.expose());
        assert_eq!(r.generation, 1);
        assert_eq!(r.issued_at, winner.issued_at);
        assert_eq!(r.session.id, created.session.id);
    }
    let listed = e.list_user("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.session.id);
    let next = e
        .refresh(winner.refresh_token.expose(), GRACE)
        .await
        .unwrap();
    assert_eq!(next.generation, 2);
}

/// Refresh tokens die with their session: idle timeout, absolute deadline,
/// revocation, and a rotation by id (which makes the session opaque).
pub async fn refresh_tokens_end_with_their_session(c: Case) {
    let e = c.engine();
    // Idle: 30 min without a refresh.
    let idle = e.create_jwt(user("alice")).await.unwrap();
    c.clock.advance(30 * MIN);
    assert!(matches!(
        e.refresh(idle.refresh_token.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    // Absolute: refreshing every 20 min keeps it alive only until then.
    let busy = e
        .create_jwt(CreateRequest {
            absolute_ttl: Some(60 * MIN),
            ..user("alice")
        })
        .await
        .unwrap();
    let mut token = busy.refresh_token;
    for _ in 0..2 {
        c.clock.advance(20 * MIN);
        token = e
            .refresh(token.expose(), GRACE)
            .await
            .unwrap()
            .refresh_token;
    }
    c.clock.advance(20 * MIN);
    assert!(matches!(
        e.refresh(token.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    // Revoked.
    let revoked = e.create_jwt(user("bob")).await.unwrap();
    assert!(
        e.revoke(revoked.session.id.as_str(), RevokeReason::Logout)
            .await
            .unwrap()
    );
    assert!(matches!(
        e.refresh(revoked.refresh_token.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    // Rotated by id: an opaque session now, with a working session token.
    let rotated = e.create_jwt(user("carol")).await.unwrap();
    let r = e.rotate(rotated.session.id.as_str()).await.unwrap();
    assert_eq!(r.session.mode, Mode::Opaque);
    assert!(matches!(
        e.refresh(rotated.refresh_token.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    let seen = e
        .introspect(r.token.expose(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.id, rotated.session.id);
    assert_eq!(seen.mode, Mode::Opaque);
    assert_eq!(
        e.get(rotated.session.id.as_str()).await.unwrap().mode,
        Mode::Opaque
    );
}

/// A well-formed refresh token of no family, or of another user's shard,
/// finds nothing and harms nobody.
pub async fn unknown_refresh_tokens_find_nothing(c: Case) {
    let e = c.engine();
    let created = e.create_jwt(user("alice")).await.unwrap();
    let stranger = RefreshToken::generate(&created.session.id.shard());
    assert!(matches!(
        e.refresh(stranger.expose(), GRACE).await,
        Err(Error::NotFound)
    ));
    assert!(
        e.refresh(created.refresh_token.expose(), GRACE)
            .await
            .unwrap()
            .rotated
    );
    assert_eq!(e.count_user("alice").await.unwrap(), 1);
}
