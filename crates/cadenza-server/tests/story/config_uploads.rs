//! Uploads: the signed single-use PUT, exact type and size, expiry with the manual clock and
//! the maintenance pass, memory entries made from an upload, and tenancy.

use cadenza_testkit::{ADMIN_TOKEN, TestApp, TestBackend, both_backends};
use serde_json::{Value, json};

use crate::{create_key, create_workspace, str_at};

async fn create(app: &TestApp, ws: &str, token: &str, content_type: &str, size: usize) -> Value {
    app.post(
        &app.ws_path(ws, "/uploads"),
        token,
        json!({"metadata": {"name": "notes"}, "spec": {"filename": "notes.md", "contentType": content_type, "sizeBytes": size.to_string()}}),
    )
    .await
    .expect(200)
}

/// PUTs `body` to the upload's URL; returns (status, error code, error reason).
async fn put(app: &TestApp, upload: &Value, content_type: &str, body: &[u8]) -> (u16, i64, String) {
    put_url(app, &str_at(upload, "/info/uploadUrl"), content_type, body).await
}

async fn put_url(app: &TestApp, url: &str, content_type: &str, body: &[u8]) -> (u16, i64, String) {
    let resp = app.client.put(url).header("content-type", content_type).body(body.to_vec()).send().await.expect("put");
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    (status, v["code"].as_i64().unwrap_or(0), v["details"][0]["reason"].as_str().unwrap_or_default().to_string())
}

/// What `put` returns for a refusal.
fn refused(status: u16, code: i64, reason: &str) -> (u16, i64, String) {
    (status, code, reason.to_string())
}

fn object_count(app: &TestApp) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 }).sum())
            .unwrap_or(0)
    }
    walk(app.blob_dir.path())
}

const TEXT: &[u8] = b"# Runbook\n1. Page the on-call.\n";

both_backends!(uploads_take_exactly_what_was_declared, exact_puts);
async fn exact_puts(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let upload = create(&app, &app.default_ws, ADMIN_TOKEN, "text/markdown", TEXT.len()).await;
    let id = str_at(&upload, "/metadata/id");
    assert!(id.starts_with("upload_"));
    assert_eq!(upload["spec"]["sizeBytes"], TEXT.len().to_string(), "int64 as a string");
    assert_eq!(upload["info"]["status"], "UPLOAD_STATUS_PENDING");
    assert_eq!(upload["info"]["uploadUrlExpiresAt"], "2026-01-01T00:15:00.000Z", "15 minutes by default");
    assert!(str_at(&upload, "/info/uploadUrl").starts_with(&format!("{}/v1/uploads/", app.base)));

    // Wrong type, too short, too long: refused, nothing stored, still PENDING.
    assert_eq!(put(&app, &upload, "text/plain", TEXT).await, refused(400, 3, "UPLOAD_TYPE_MISMATCH"));
    assert_eq!(put(&app, &upload, "text/markdown", &TEXT[..5]).await, refused(400, 3, "UPLOAD_SIZE_MISMATCH"));
    let mut longer = TEXT.to_vec();
    longer.push(b'!');
    assert_eq!(put(&app, &upload, "text/markdown", &longer).await, refused(400, 3, "UPLOAD_SIZE_MISMATCH"));
    assert_eq!(object_count(&app), 0);
    let path = app.ws_path(&app.default_ws, &format!("/uploads/{id}"));
    assert_eq!(app.get(&path, ADMIN_TOKEN).await.expect(200)["info"]["status"], "UPLOAD_STATUS_PENDING");

    // A tampered token is refused; the right PUT completes it, once.
    let url = str_at(&upload, "/info/uploadUrl");
    let tampered = url.replacen(&id, &id.replacen('A', "B", 1).replacen('0', "1", 1), 1);
    assert_eq!(put_url(&app, &tampered, "text/markdown", TEXT).await, refused(403, 7, "UPLOAD_SIGNATURE_INVALID"));
    assert_eq!(
        put_url(&app, &format!("{url}x"), "text/markdown", TEXT).await,
        refused(403, 7, "UPLOAD_SIGNATURE_INVALID")
    );
    assert_eq!(put(&app, &upload, "text/markdown", TEXT).await, (200, 0, String::new()));
    assert_eq!(object_count(&app), 1);
    let got = app.get(&path, ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["info"]["status"], "UPLOAD_STATUS_COMPLETE");
    assert_eq!(got["info"]["uploadUrl"], url.as_str(), "the URL stays on later reads");
    assert_eq!(put(&app, &upload, "text/markdown", TEXT).await, refused(400, 9, "UPLOAD_CONSUMED"), "single use");
    assert_eq!(object_count(&app), 1);

    // Validation.
    let uploads = app.ws_path(&app.default_ws, "/uploads");
    for (spec, needle, reason) in [
        (json!({"contentType": "text/plain", "sizeBytes": "3"}), "filename", "FIELD_REQUIRED"),
        (json!({"filename": "a", "contentType": "plain", "sizeBytes": "3"}), "contentType", "FIELD_INVALID"),
        (json!({"filename": "a", "contentType": "text/plain"}), "sizeBytes", "FIELD_REQUIRED"),
        (json!({"filename": "a", "contentType": "text/plain", "sizeBytes": "0"}), "sizeBytes", "FIELD_INVALID"),
        (json!({"filename": "a", "contentType": "text/plain", "sizeBytes": "many"}), "sizeBytes", "FIELD_INVALID"),
        (
            json!({"filename": "a", "contentType": "text/plain", "sizeBytes": "99999999999"}),
            "limit",
            "UPLOAD_TOO_LARGE",
        ),
    ] {
        let msg = app
            .post(&uploads, ADMIN_TOKEN, json!({"metadata": {}, "spec": spec.clone()}))
            .await
            .expect_error_reason(400, 3, reason);
        assert!(msg.contains(needle), "{spec}: {msg:?} should mention {needle}");
    }
    // A JSON number is accepted for sizeBytes too.
    app.post(
        &uploads,
        ADMIN_TOKEN,
        json!({"metadata": {}, "spec": {"filename": "n.txt", "contentType": "text/plain", "sizeBytes": 3}}),
    )
    .await
    .expect(200);
}

both_backends!(unused_uploads_expire, expiry);
async fn expiry(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let late = create(&app, &app.default_ws, ADMIN_TOKEN, "text/plain", TEXT.len()).await;
    let unused = create(&app, &app.default_ws, ADMIN_TOKEN, "text/plain", TEXT.len()).await;
    assert_eq!(put(&app, &unused, "text/plain", TEXT).await.0, 200);

    // Past the link's lifetime: the PUT is refused; the pass marks the upload EXPIRED.
    app.clock.advance_ms(16 * 60 * 1000);
    assert_eq!(put(&app, &late, "text/plain", TEXT).await, refused(400, 9, "UPLOAD_EXPIRED"));
    crate::expire_uploads(&app).await;
    let late_path = app.ws_path(&app.default_ws, &format!("/uploads/{}", str_at(&late, "/metadata/id")));
    assert_eq!(app.get(&late_path, ADMIN_TOKEN).await.expect(200)["info"]["status"], "UPLOAD_STATUS_EXPIRED");
    let unused_path = app.ws_path(&app.default_ws, &format!("/uploads/{}", str_at(&unused, "/metadata/id")));
    assert_eq!(app.get(&unused_path, ADMIN_TOKEN).await.expect(200)["info"]["status"], "UPLOAD_STATUS_COMPLETE");
    assert_eq!(object_count(&app), 1);

    // A complete upload nobody uses within the retention expires and its bytes go.
    app.clock.advance_ms(24 * 3600 * 1000);
    crate::expire_uploads(&app).await;
    assert_eq!(app.get(&unused_path, ADMIN_TOKEN).await.expect(200)["info"]["status"], "UPLOAD_STATUS_EXPIRED");
    assert_eq!(object_count(&app), 0);
}

both_backends!(memory_entries_from_uploads, memory_entries);
async fn memory_entries(backend: TestBackend) {
    let Some(app) = TestApp::start(backend).await else { return };
    let layer = app
        .post(
            &app.ws_path(&app.default_ws, "/memory_layers"),
            ADMIN_TOKEN,
            json!({"metadata": {"name": "Runbooks"}, "spec": {"type": "MEMORY_LAYER_TYPE_SKILLS"}}),
        )
        .await
        .expect(200);
    let entries = app.ws_path(&app.default_ws, &format!("/memory_layers/{}/entries", str_at(&layer, "/metadata/id")));
    let upload = create(&app, &app.default_ws, ADMIN_TOKEN, "text/markdown", TEXT.len()).await;
    let upload_id = str_at(&upload, "/metadata/id");

    // Not uploaded yet: refused.
    app.post(
        &entries,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "rb"}, "spec": {"key": "runbooks/oncall", "uploadId": upload_id}}),
    )
    .await
    .expect_error_reason(400, 9, "UPLOAD_NOT_COMPLETE");
    assert_eq!(put(&app, &upload, "text/markdown", TEXT).await.0, 200);
    let entry = app
        .post(&entries, ADMIN_TOKEN, json!({"metadata": {"name": "rb"}, "spec": {"type": "uploadId", "key": "runbooks/oncall", "uploadId": upload_id}}))
        .await
        .expect(200);
    assert_eq!(entry["content"], std::str::from_utf8(TEXT).expect("utf8"));
    let upload_path = app.ws_path(&app.default_ws, &format!("/uploads/{upload_id}"));
    assert_eq!(app.get(&upload_path, ADMIN_TOKEN).await.expect(200)["info"]["status"], "UPLOAD_STATUS_CONSUMED");
    // Used once only.
    app.post(
        &entries,
        ADMIN_TOKEN,
        json!({"metadata": {"name": "again"}, "spec": {"key": "runbooks/again", "uploadId": upload_id}}),
    )
    .await
    .expect_error_reason(400, 9, "UPLOAD_CONSUMED");
    // The pass removes a consumed upload's bytes (the entry holds the text).
    crate::expire_uploads(&app).await;
    assert_eq!(object_count(&app), 0);
    let got = app.get(&format!("{entries}/{}", str_at(&entry, "/metadata/id")), ADMIN_TOKEN).await.expect(200);
    assert_eq!(got["content"], std::str::from_utf8(TEXT).expect("utf8"));

    // An update can take its new content from an upload too.
    let v2 = b"# Runbook v2\n".to_vec();
    let second = create(&app, &app.default_ws, ADMIN_TOKEN, "text/markdown", v2.len()).await;
    assert_eq!(put(&app, &second, "text/markdown", &v2).await.0, 200);
    let updated = app
        .patch(
            &format!("{entries}/{}", str_at(&entry, "/metadata/id")),
            ADMIN_TOKEN,
            json!({"spec": {"uploadId": str_at(&second, "/metadata/id")}}),
        )
        .await
        .expect(200);
    assert_eq!(updated["content"], "# Runbook v2\n");

    // Binary bytes are not text.
    let binary = create(&app, &app.default_ws, ADMIN_TOKEN, "application/octet-stream", 3).await;
    assert_eq!(put(&app, &binary, "application/octet-stream", &[0xff, 0xfe, 0x00]).await.0, 200);
    let msg = app
        .post(
            &entries,
            ADMIN_TOKEN,
            json!({"metadata": {"name": "bin"}, "spec": {"key": "bin", "uploadId": str_at(&binary, "/metadata/id")}}),
        )
        .await
        .expect_error_reason(400, 3, "UPLOAD_NOT_TEXT");
    assert!(msg.contains("UTF-8"));
    let binary_path = app.ws_path(&app.default_ws, &format!("/uploads/{}", str_at(&binary, "/metadata/id")));
    assert_eq!(
        app.get(&binary_path, ADMIN_TOKEN).await.expect(200)["info"]["status"],
        "UPLOAD_STATUS_COMPLETE",
        "a refused use consumes nothing"
    );

    // Tenancy: another workspace's upload is a 404, as a path and as an entry source.
    let other = create_workspace(&app, "Other", "other").await;
    let (_, theirs) = create_key(&app, &other, "theirs", &["*"]).await;
    let their_upload = create(&app, &other, &theirs, "text/plain", TEXT.len()).await;
    assert_eq!(put(&app, &their_upload, "text/plain", TEXT).await.0, 200);
    let their_id = str_at(&their_upload, "/metadata/id");
    app.get(&app.ws_path(&app.default_ws, &format!("/uploads/{their_id}")), ADMIN_TOKEN).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.get(&app.ws_path(&other, &format!("/uploads/{upload_id}")), &theirs).await.expect_error_reason(
        404,
        5,
        "NOT_FOUND",
    );
    app.post(&entries, ADMIN_TOKEN, json!({"metadata": {"name": "x"}, "spec": {"key": "x", "uploadId": their_id}}))
        .await
        .expect_error_reason(404, 5, "NOT_FOUND");
    let (_, reader) = create_key(&app, &app.default_ws, "reader", &["memory:read"]).await;
    app.get(&upload_path, &reader).await.expect(200);
    app.post(
        &app.ws_path(&app.default_ws, "/uploads"),
        &reader,
        json!({"metadata": {}, "spec": {"filename": "a", "contentType": "text/plain", "sizeBytes": "1"}}),
    )
    .await
    .expect_error_reason(403, 7, "SCOPE_MISSING");
}
