//! The distribution API over real HTTP: every endpoint, its headers, and its error paths.

use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use testkit::*;

#[tokio::test]
async fn base_endpoint_and_api_version() {
    let reg = TestRegistry::start().await.expect("start");
    let resp = client().get(format!("{}/v2/", reg.url())).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0");
    assert_eq!(resp.text().await.expect("body"), "{}");
    let resp = client().get(format!("{}/healthz", reg.url())).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let reg = TestRegistry::start().await.expect("start");
    let c = client();
    assert_error(
        c.get(format!("{}/v2/a/nothing/x", reg.url())).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "UNSUPPORTED",
    )
    .await;
    assert_error(
        c.get(format!("{}/other", reg.url())).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "UNSUPPORTED",
    )
    .await;
    assert_error(
        c.post(format!("{}/v2/a/tags/list", reg.url())).send().await.expect("post"),
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
    )
    .await;
}

#[tokio::test]
async fn monolithic_push_then_pull_with_ranges() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&data);

    let resp = c
        .post(format!("{base}/v2/lib/app/blobs/uploads/?digest={digest}"))
        .body(data.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), format!("/v2/lib/app/blobs/{digest}"));
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());

    let resp = c.head(format!("{base}/v2/lib/app/blobs/{digest}")).send().await.expect("head");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), "100000");
    assert_eq!(header(&resp, "docker-content-digest"), digest.to_string());

    let resp = c.get(format!("{base}/v2/lib/app/blobs/{digest}")).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), data.as_slice());

    let resp = c
        .get(format!("{base}/v2/lib/app/blobs/{digest}"))
        .header("range", "bytes=10-4105")
        .send()
        .await
        .expect("range");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 10-4105/100000");
    assert_eq!(header(&resp, "content-length"), "4096");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &data[10..4106]);

    let resp = c
        .get(format!("{base}/v2/lib/app/blobs/{digest}"))
        .header("range", "bytes=99990-")
        .send()
        .await
        .expect("open range");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &data[99990..]);

    let resp =
        c.get(format!("{base}/v2/lib/app/blobs/{digest}")).header("range", "bytes=-5").send().await.expect("suffix");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 99995-99999/100000");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), &data[99995..]);

    let resp =
        c.get(format!("{base}/v2/lib/app/blobs/{digest}")).header("range", "bytes=100000-").send().await.expect("416");
    assert_eq!(header(&resp, "content-range"), "bytes */100000");
    assert_error(resp, StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN").await;

    // Other repositories do not see it.
    let resp = c.head(format!("{base}/v2/other/blobs/{digest}")).send().await.expect("head");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_error(
        c.get(format!("{base}/v2/other/blobs/{digest}")).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;

    // Delete unlinks it.
    let resp = c.delete(format!("{base}/v2/lib/app/blobs/{digest}")).send().await.expect("delete");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(
        c.head(format!("{base}/v2/lib/app/blobs/{digest}")).send().await.expect("head").status(),
        StatusCode::NOT_FOUND
    );
    assert_error(
        c.delete(format!("{base}/v2/lib/app/blobs/{digest}")).send().await.expect("delete"),
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
    )
    .await;
    assert_eq!(stored(&reg).0, 0, "no upload left");
}

#[tokio::test]
async fn post_then_single_put() {
    let reg = TestRegistry::start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let data = b"one request after the session".to_vec();
    let digest = Digest::sha256_of(&data);
    let resp = c.post(format!("{base}/v2/a/blobs/uploads/")).send().await.expect("post");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let location = header(&resp, "location");
    assert!(location.starts_with("/v2/a/blobs/uploads/"));
    assert_eq!(header(&resp, "range"), "0-0");
    assert!(!header(&resp, "docker-upload-uuid").is_empty());
    let resp = c.put(format!("{base}{location}?digest={digest}")).body(data.clone()).send().await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), format!("/v2/a/blobs/{digest}"));
    let got = c.get(format!("{base}/v2/a/blobs/{digest}")).send().await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order_chunks() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let resp = c.post(format!("{base}/v2/a/b/blobs/uploads/")).send().await.expect("post");
    let location = header(&resp, "location");

    let patch = |from: usize, to: usize| {
        c.patch(format!("{base}{location}"))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{from}-{}", to - 1))
            .body(data[from..to].to_vec())
            .send()
    };
    let resp = patch(0, 10_000).await.expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(header(&resp, "range"), "0-9999");
    assert_eq!(header(&resp, "location"), location);

    // Out of order: a gap, then an overlap. Each is 416 with the current range, nothing written.
    for (from, to) in [(15_000, 20_000), (5_000, 12_000)] {
        let resp = patch(from, to).await.expect("patch");
        assert_eq!(header(&resp, "range"), "0-9999");
        assert_error(resp, StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID").await;
    }
    // Content-Range disagreeing with Content-Length is 416 too.
    let resp = c
        .patch(format!("{base}{location}"))
        .header("content-range", "10000-10009")
        .body(vec![0u8; 5])
        .send()
        .await
        .expect("patch");
    assert_error(resp, StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID").await;

    let resp = c.get(format!("{base}{location}")).send().await.expect("status");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&resp, "range"), "0-9999");

    assert_eq!(patch(10_000, 20_000).await.expect("patch").status(), StatusCode::ACCEPTED);
    // A chunk without Content-Range is appended (docker and containerd send them so).
    let resp = c.patch(format!("{base}{location}")).body(data[20_000..25_000].to_vec()).send().await.expect("patch");
    assert_eq!(header(&resp, "range"), "0-24999");
    // The last chunk rides on the PUT.
    let resp = c
        .put(format!("{base}{location}?digest={digest}"))
        .header("content-range", "25000-29999")
        .body(data[25_000..].to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got = c.get(format!("{base}/v2/a/b/blobs/{digest}")).send().await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), data.as_slice());
    assert_eq!(stored(&reg), (0, 1), "upload gone, one blob");
    assert_error(
        c.get(format!("{base}{location}")).send().await.expect("status"),
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

#[tokio::test]
async fn digest_and_size_mismatches_leave_nothing_behind() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    let wrong = Digest::sha256_of(b"something else");

    // Monolithic.
    let resp = c
        .post(format!("{base}/v2/a/blobs/uploads/?digest={wrong}"))
        .body(b"actual bytes".to_vec())
        .send()
        .await
        .expect("post");
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_eq!(stored(&reg), (0, 0));

    // Chunked, mismatch at the end: the session is gone too.
    let location = header(&c.post(format!("{base}/v2/a/blobs/uploads/")).send().await.expect("post"), "location");
    c.patch(format!("{base}{location}")).body(b"some bytes".to_vec()).send().await.expect("patch");
    let resp = c.put(format!("{base}{location}?digest={wrong}")).send().await.expect("put");
    assert_error(resp, StatusCode::BAD_REQUEST, "DIGEST_INVALID").await;
    assert_error(
        c.get(format!("{base}{location}")).send().await.expect("status"),
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_eq!(stored(&reg), (0, 0));
    assert_eq!(
        c.head(format!("{base}/v2/a/blobs/{wrong}")).send().await.expect("head").status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn malformed_digests_names_and_ids() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    for d in ["sha256:abc", "sha256:XYZ", "nocolon", "sha256:"] {
        assert_error(
            c.post(format!("{base}/v2/a/blobs/uploads/?digest={d}")).body("x").send().await.expect("post"),
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        )
        .await;
    }
    let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e";
    assert_error(
        c.post(format!("{base}/v2/a/blobs/uploads/?digest={md5}")).body("x").send().await.expect("post"),
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
    assert_error(
        c.get(format!("{base}/v2/a/blobs/sha256:abc")).send().await.expect("get"),
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
    for name in ["A/b", "a/../b", "a/%2e%2e/b", "a/%2E%2E/b", "a/./b", "a__-b", "-a", "..", "a//b", "a%2fb"] {
        for (method, path) in [("POST", format!("/v2/{name}/blobs/uploads/")), ("GET", format!("/v2/{name}/tags/list"))]
        {
            let (status, body) = raw_request(&reg, method, &path).await;
            assert_eq!(status, 400, "{method} {path}");
            assert!(body.contains("NAME_INVALID"), "{method} {path}: {body}");
        }
    }
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_error(
        c.patch(format!("{base}/v2/a/blobs/uploads/{unknown}")).body("x").send().await.expect("patch"),
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_error(
        c.patch(format!("{base}/v2/a/blobs/uploads/not-an-id")).body("x").send().await.expect("patch"),
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    // PUT without a digest.
    let location = header(&c.post(format!("{base}/v2/a/blobs/uploads/")).send().await.expect("post"), "location");
    assert_error(
        c.put(format!("{base}{location}")).send().await.expect("put"),
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
    // An upload belongs to its repository.
    let id = location.rsplit('/').next().expect("id");
    assert_error(
        c.get(format!("{base}/v2/other/blobs/uploads/{id}")).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    // Cancel.
    assert_eq!(c.delete(format!("{base}{location}")).send().await.expect("delete").status(), StatusCode::NO_CONTENT);
    assert_error(
        c.delete(format!("{base}{location}")).send().await.expect("delete"),
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_eq!(stored(&reg), (0, 0), "nothing left behind");
}

#[tokio::test]
async fn cross_repository_mount() {
    let reg = TestRegistry::start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let digest = push_blob(&c, &base, "src/app", b"shared layer").await;
    let resp =
        c.post(format!("{base}/v2/dst/app/blobs/uploads/?mount={digest}&from=src/app")).send().await.expect("mount");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), format!("/v2/dst/app/blobs/{digest}"));
    assert_eq!(
        c.head(format!("{base}/v2/dst/app/blobs/{digest}")).send().await.expect("head").status(),
        StatusCode::OK
    );
    // From a repository without it (or an invalid one): a fresh upload session instead.
    for from in ["nothing/here", "In..valid"] {
        let other = Digest::sha256_of(b"never pushed");
        let resp =
            c.post(format!("{base}/v2/dst/app/blobs/uploads/?mount={other}&from={from}")).send().await.expect("mount");
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        assert!(header(&resp, "location").starts_with("/v2/dst/app/blobs/uploads/"));
    }
}

#[tokio::test]
async fn manifests_push_pull_delete_and_rules() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    let config = b"{\"os\":\"linux\"}";
    let layer = b"layer bytes";
    let cd = Digest::sha256_of(config);
    let ld = Digest::sha256_of(layer);
    let manifest = image_manifest(&cd, config.len(), &[(ld.clone(), layer.len())], "");
    let md = Digest::sha256_of(manifest.as_bytes());
    let put = |reference: String, body: String, ct: &'static str| {
        c.put(format!("{base}/v2/app/manifests/{reference}")).header("content-type", ct).body(body).send()
    };

    // Blobs missing: refused, and no tag appears.
    assert_error(
        put("v1".into(), manifest.clone(), OCI_MANIFEST).await.expect("put"),
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    push_blob(&c, &base, "app", config).await;
    assert_error(
        put("v1".into(), manifest.clone(), OCI_MANIFEST).await.expect("put"),
        StatusCode::BAD_REQUEST,
        "MANIFEST_BLOB_UNKNOWN",
    )
    .await;
    assert!(
        c.get(format!("{base}/v2/app/tags/list"))
            .send()
            .await
            .expect("tags")
            .json::<serde_json::Value>()
            .await
            .expect("json")["tags"]
            .as_array()
            .expect("tags")
            .is_empty()
    );
    push_blob(&c, &base, "app", layer).await;

    let resp = put("v1".into(), manifest.clone(), OCI_MANIFEST).await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(header(&resp, "location"), format!("/v2/app/manifests/{md}"));
    assert_eq!(header(&resp, "docker-content-digest"), md.to_string());

    for reference in ["v1".to_string(), md.to_string()] {
        let resp = c
            .get(format!("{base}/v2/app/manifests/{reference}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-type"), OCI_MANIFEST);
        assert_eq!(header(&resp, "docker-content-digest"), md.to_string());
        assert_eq!(resp.text().await.expect("body"), manifest);
        let resp = c.head(format!("{base}/v2/app/manifests/{reference}")).send().await.expect("head");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "content-length"), manifest.len().to_string());
        assert_eq!(header(&resp, "docker-content-digest"), md.to_string());
    }
    // Content negotiation: a client that accepts only Docker types does not get an OCI manifest.
    let resp = c
        .get(format!("{base}/v2/app/manifests/v1"))
        .header("accept", "application/vnd.docker.distribution.manifest.v2+json")
        .send()
        .await
        .expect("get");
    assert_error(resp, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;

    // Push by digest: must hash to it.
    assert_eq!(put(md.to_string(), manifest.clone(), OCI_MANIFEST).await.expect("put").status(), StatusCode::CREATED);
    let other = Digest::sha256_of(b"x");
    assert_error(
        put(other.to_string(), manifest.clone(), OCI_MANIFEST).await.expect("put"),
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;

    // Invalid manifests.
    assert_error(
        put("bad".into(), "{not json".into(), OCI_MANIFEST).await.expect("put"),
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
    )
    .await;
    assert_error(
        put("bad".into(), manifest.clone(), "text/plain").await.expect("put"),
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
    )
    .await;
    assert_error(
        put("bad".into(), manifest.clone(), OCI_INDEX).await.expect("put"),
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
    )
    .await;
    assert_error(
        put(
            "bad".into(),
            r#"{"schemaVersion":1,"fsLayers":[]}"#.into(),
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )
        .await
        .expect("put"),
        StatusCode::BAD_REQUEST,
        "MANIFEST_INVALID",
    )
    .await;
    assert_error(
        put("bad".into(), " ".repeat(5 << 20), OCI_MANIFEST).await.expect("put"),
        StatusCode::PAYLOAD_TOO_LARGE,
        "SIZE_INVALID",
    )
    .await;
    assert_error(
        put("-bad-tag".into(), manifest.clone(), OCI_MANIFEST).await.expect("put"),
        StatusCode::BAD_REQUEST,
        "TAG_INVALID",
    )
    .await;
    assert_error(
        c.get(format!("{base}/v2/app/manifests/bad")).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let tags: serde_json::Value =
        c.get(format!("{base}/v2/app/tags/list")).send().await.expect("tags").json().await.expect("json");
    assert_eq!(tags["tags"], serde_json::json!(["v1"]), "no tag from a refused push");

    // Delete a tag: the manifest stays. Delete the manifest: its tags go.
    put("v2".into(), manifest.clone(), OCI_MANIFEST).await.expect("put");
    assert_eq!(
        c.delete(format!("{base}/v2/app/manifests/v2")).send().await.expect("delete").status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(c.get(format!("{base}/v2/app/manifests/v1")).send().await.expect("get").status(), StatusCode::OK);
    assert_error(
        c.delete(format!("{base}/v2/app/manifests/v2")).send().await.expect("delete"),
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_eq!(
        c.delete(format!("{base}/v2/app/manifests/{md}")).send().await.expect("delete").status(),
        StatusCode::ACCEPTED
    );
    assert_error(
        c.get(format!("{base}/v2/app/manifests/v1")).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    assert_error(
        c.get(format!("{base}/v2/app/manifests/{md}")).send().await.expect("get"),
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
    )
    .await;
    let tags: serde_json::Value =
        c.get(format!("{base}/v2/app/tags/list")).send().await.expect("tags").json().await.expect("json");
    assert_eq!(tags["tags"], serde_json::json!([]));
    assert_eq!(stored(&reg).0, 0, "no upload left behind");
}

#[tokio::test]
async fn index_requires_its_children() {
    let reg = TestRegistry::start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let (child, child_digest) = push_image(&c, &base, "multi", "amd64", "a").await;
    let missing = Digest::sha256_of(b"not a manifest here");
    let index = |d: &Digest, size: usize| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":{size},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        )
    };
    let resp = c
        .put(format!("{base}/v2/multi/manifests/latest"))
        .header("content-type", OCI_INDEX)
        .body(index(&missing, 10))
        .send()
        .await
        .expect("put");
    assert_error(resp, StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN").await;
    let resp = c
        .put(format!("{base}/v2/multi/manifests/latest"))
        .header("content-type", OCI_INDEX)
        .body(index(&child_digest, child.len()))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = c.get(format!("{base}/v2/multi/manifests/latest")).send().await.expect("get");
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
}

#[tokio::test]
async fn tag_list_and_catalog_paginate() {
    let reg = TestRegistry::start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let (manifest, _) = push_image(&c, &base, "pages", "t0", "p").await;
    for t in ["t1", "t2", "t3", "t4"] {
        let resp = c
            .put(format!("{base}/v2/pages/manifests/{t}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone())
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = c.get(format!("{base}/v2/pages/tags/list?n=2")).send().await.expect("tags");
    assert_eq!(header(&resp, "link"), "</v2/pages/tags/list?n=2&last=t1>; rel=\"next\"");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"name": "pages", "tags": ["t0", "t1"]}));
    let resp = c.get(format!("{base}/v2/pages/tags/list?n=2&last=t3")).send().await.expect("tags");
    assert_eq!(header(&resp, "link"), "", "last page has no Link");
    assert_eq!(resp.json::<serde_json::Value>().await.expect("json")["tags"], serde_json::json!(["t4"]));
    assert_error(
        c.get(format!("{base}/v2/pages/tags/list?n=x")).send().await.expect("tags"),
        StatusCode::BAD_REQUEST,
        "UNSUPPORTED",
    )
    .await;
    assert_error(
        c.get(format!("{base}/v2/nothing/tags/list")).send().await.expect("tags"),
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
    )
    .await;

    push_blob(&c, &base, "a/one", b"1").await;
    push_blob(&c, &base, "b/two", b"2").await;
    let resp = c.get(format!("{base}/v2/_catalog?n=2")).send().await.expect("catalog");
    assert_eq!(header(&resp, "link"), "</v2/_catalog?n=2&last=b/two>; rel=\"next\"");
    assert_eq!(
        resp.json::<serde_json::Value>().await.expect("json"),
        serde_json::json!({"repositories": ["a/one", "b/two"]})
    );
    let resp = c.get(format!("{base}/v2/_catalog?last=b/two")).send().await.expect("catalog");
    assert_eq!(resp.json::<serde_json::Value>().await.expect("json"), serde_json::json!({"repositories": ["pages"]}));
}

#[tokio::test]
async fn referrers_api() {
    let reg = TestRegistry::start().await.expect("start");
    let (c, base) = (client(), reg.url());
    let (subject, subject_digest) = push_image(&c, &base, "art", "v1", "s").await;
    let empty = push_blob(&c, &base, "art", b"{}").await;
    let payload = push_blob(&c, &base, "art", b"signature bytes").await;
    let artifact = |kind: &str, note: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{kind}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/octet-stream","digest":"{payload}","size":15}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject_digest}","size":{}}},"annotations":{{"note":"{note}"}}}}"#,
            subject.len()
        )
    };
    let sig = artifact("application/vnd.example.signature", "sig");
    let sbom = artifact("application/vnd.example.sbom", "sbom");
    for body in [&sig, &sbom] {
        let d = Digest::sha256_of(body.as_bytes());
        let resp = c
            .put(format!("{base}/v2/art/manifests/{d}"))
            .header("content-type", OCI_MANIFEST)
            .body(body.clone())
            .send()
            .await
            .expect("put");
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(header(&resp, "oci-subject"), subject_digest.to_string());
    }
    let resp = c.get(format!("{base}/v2/art/referrers/{subject_digest}")).send().await.expect("referrers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    let index: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2);
    let sig_entry = manifests.iter().find(|m| m["artifactType"] == "application/vnd.example.signature").expect("sig");
    assert_eq!(sig_entry["digest"], Digest::sha256_of(sig.as_bytes()).to_string());
    assert_eq!(sig_entry["size"], sig.len());
    assert_eq!(sig_entry["mediaType"], OCI_MANIFEST);
    assert_eq!(sig_entry["annotations"]["note"], "sig");

    let resp = c
        .get(format!("{base}/v2/art/referrers/{subject_digest}?artifactType=application/vnd.example.sbom"))
        .send()
        .await
        .expect("filtered");
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    let index: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(index["manifests"].as_array().expect("manifests").len(), 1);
    assert_eq!(index["manifests"][0]["annotations"]["note"], "sbom");

    // Unknown subject: an empty index. Deleting a referrer removes it from the list.
    let none: serde_json::Value =
        c.get(format!("{base}/v2/art/referrers/{empty}")).send().await.expect("referrers").json().await.expect("json");
    assert_eq!(none["manifests"], serde_json::json!([]));
    c.delete(format!("{base}/v2/art/manifests/{}", Digest::sha256_of(sig.as_bytes()))).send().await.expect("delete");
    let index: serde_json::Value = c
        .get(format!("{base}/v2/art/referrers/{subject_digest}"))
        .send()
        .await
        .expect("referrers")
        .json()
        .await
        .expect("json");
    assert_eq!(index["manifests"].as_array().expect("manifests").len(), 1);
    assert_error(
        c.get(format!("{base}/v2/art/referrers/sha256:nope")).send().await.expect("get"),
        StatusCode::BAD_REQUEST,
        "DIGEST_INVALID",
    )
    .await;
}

#[tokio::test]
async fn concurrent_uploads_of_one_blob_store_one_copy() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let base = reg.url();
    let data: Vec<u8> = (0..500_000u32).map(|i| (i % 253) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (base, data) = (base.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let repo = if i % 2 == 0 { "same/repo".to_string() } else { format!("repo{i}") };
            let location =
                header(&c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.expect("post"), "location");
            for chunk in data.chunks(100_000) {
                let resp = c.patch(format!("{base}{location}")).body(chunk.to_vec()).send().await.expect("patch");
                assert_eq!(resp.status(), StatusCode::ACCEPTED);
            }
            let digest = Digest::sha256_of(&data);
            c.put(format!("{base}{location}?digest={digest}")).send().await.expect("put").status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), StatusCode::CREATED);
    }
    assert_eq!(stored(&reg), (0, 1), "one copy, no uploads left");
    let got =
        client().get(format!("{base}/v2/repo3/blobs/{digest}")).send().await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn client_that_disconnects_mid_chunk_loses_nothing_acknowledged() {
    use tokio::io::AsyncWriteExt;
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    let location = header(&c.post(format!("{base}/v2/a/blobs/uploads/")).send().await.expect("post"), "location");
    c.patch(format!("{base}{location}")).body(vec![1u8; 1000]).send().await.expect("patch");
    // Promise 100000 bytes, send 5000, hang up.
    let mut s = tokio::net::TcpStream::connect(reg.addr()).await.expect("connect");
    let head = format!("PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100000\r\n\r\n", reg.host());
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&[2u8; 5000]).await.expect("write");
    s.shutdown().await.expect("shutdown");
    drop(s);
    // The interrupted chunk is rolled back; the upload continues at 1000.
    let mut offset = String::new();
    for _ in 0..100 {
        // The server notices the disconnect asynchronously; poll the status (no sleep: each
        // request is a round trip to the server).
        offset = header(&c.get(format!("{base}{location}")).send().await.expect("status"), "range");
        if offset == "0-999" {
            break;
        }
    }
    assert_eq!(offset, "0-999");
    let mut data = vec![1u8; 1000];
    data.extend_from_slice(&[3u8; 2000]);
    let resp = c
        .patch(format!("{base}{location}"))
        .header("content-range", "1000-2999")
        .body(vec![3u8; 2000])
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let digest = Digest::sha256_of(&data);
    assert_eq!(
        c.put(format!("{base}{location}?digest={digest}")).send().await.expect("put").status(),
        StatusCode::CREATED
    );
    let got = c.get(format!("{base}/v2/a/blobs/{digest}")).send().await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), data.as_slice());
}

#[tokio::test]
async fn chunked_upload_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
    let digest = Digest::sha256_of(&data);
    let c = client();
    let reg = TestRegistry::start_in(dir.path()).await.expect("start");
    let location =
        header(&c.post(format!("{}/v2/a/blobs/uploads/", reg.url())).send().await.expect("post"), "location");
    let resp = c
        .patch(format!("{}{location}", reg.url()))
        .header("content-range", "0-99999")
        .body(data[..100_000].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    reg.stop().await;

    let reg = TestRegistry::start_in(dir.path()).await.expect("restart on the same data");
    let resp = c.get(format!("{}{location}", reg.url())).send().await.expect("status");
    assert_eq!(header(&resp, "range"), "0-99999", "the offset survived");
    let resp = c
        .patch(format!("{}{location}", reg.url()))
        .header("content-range", "100000-199999")
        .body(data[100_000..].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = c.put(format!("{}{location}?digest={digest}", reg.url())).send().await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED, "the hash state survived: digest verified");
    let got =
        c.get(format!("{}/v2/a/blobs/{digest}", reg.url())).send().await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), data.as_slice());
    let (manifest, md) = push_image(&c, &reg.url(), "a", "kept", "r").await;
    reg.stop().await;

    let reg = TestRegistry::start_in(dir.path()).await.expect("restart again");
    let resp = c.get(format!("{}/v2/a/manifests/kept", reg.url())).send().await.expect("get");
    assert_eq!(header(&resp, "docker-content-digest"), md.to_string());
    assert_eq!(resp.text().await.expect("body"), manifest, "manifests and tags survive a restart");
    reg.stop().await;
}

/// A client stalled in the middle of an upload when the server stops: the grace runs out, its
/// connection is closed, and once `stop` returns nothing holds the data any more (the same
/// directory opens again at once; before, the connection's task lived on with the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_holds_nothing_once_the_server_stopped() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let options =
        registry_http::ServerOptions { shutdown_grace: std::time::Duration::from_millis(200), ..Default::default() };
    let reg = TestRegistry::builder()
        .server_options(options)
        .metrics(true)
        .embedded(dir.path())
        .start()
        .await
        .expect("start");
    let c = client();
    let location =
        header(&c.post(format!("{}/v2/a/blobs/uploads/", reg.url())).send().await.expect("post"), "location");
    let mut stalled = tokio::net::TcpStream::connect(reg.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n",
        reg.host()
    );
    stalled.write_all(head.as_bytes()).await.expect("head");
    stalled.write_all(&[7u8; 1000]).await.expect("part of the body");
    // The PATCH is being served (read from the server's own gauge, not guessed with a sleep).
    let in_flight = r#"registry_http_requests_in_flight{route="upload"} 1"#;
    while !c
        .get(format!("{}/metrics", reg.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
        .lines()
        .any(|l| l == in_flight)
    {
        tokio::task::yield_now().await;
    }
    reg.stop().await;
    let reg = TestRegistry::start_in(dir.path()).await.expect("the data opens again at once");
    let resp = c.get(format!("{}{location}", reg.url())).send().await.expect("status");
    assert_eq!(resp.status(), StatusCode::NO_CONTENT, "the upload is still there to continue");
    reg.stop().await;
    drop(stalled);
}

/// Sends a PATCH with a chunked body (no Content-Length) and returns the status line.
async fn chunked_patch(reg: &TestRegistry, location: &str, range: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(reg.addr()).await.expect("connect");
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Range: {range}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        reg.host()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    if !body.is_empty() {
        s.write_all(format!("{:x}\r\n", body.len()).as_bytes()).await.expect("write");
        s.write_all(body).await.expect("write");
        s.write_all(b"\r\n").await.expect("write");
    }
    s.write_all(b"0\r\n\r\n").await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn chunks_must_carry_exactly_their_declared_range() {
    let reg = TestRegistry::start_on_disk().await.expect("start");
    let (c, base) = (client(), reg.url());
    let location = header(&c.post(format!("{base}/v2/a/blobs/uploads/")).send().await.expect("post"), "location");
    assert!(chunked_patch(&reg, &location, "0-9", b"0123456789").await.contains("202"));
    // Fewer bytes than the range says, then more: both 416, the upload stays at 10.
    assert!(chunked_patch(&reg, &location, "10-19", b"short").await.contains("416"));
    assert!(chunked_patch(&reg, &location, "10-19", b"far too many bytes").await.contains("416"));
    assert!(chunked_patch(&reg, &location, "10-10", b"").await.contains("416"), "an empty chunk claiming a byte");
    assert_eq!(header(&c.get(format!("{base}{location}")).send().await.expect("status"), "range"), "0-9");
    // Completing now publishes exactly the acknowledged bytes, not what the refused chunks left.
    let digest = Digest::sha256_of(b"0123456789");
    let resp = c.put(format!("{base}{location}?digest={digest}")).send().await.expect("put");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let got = c.get(format!("{base}/v2/a/blobs/{digest}")).send().await.expect("get").bytes().await.expect("body");
    assert_eq!(got.as_ref(), b"0123456789");
    assert_eq!(stored(&reg), (0, 1));
}

/// A reference that is neither a tag nor a digest names no manifest: readers get 404
/// `MANIFEST_UNKNOWN`, as clients and conformance tooling expect; a writer gets 400 `TAG_INVALID`.
#[tokio::test]
async fn unparseable_references_are_unknown_to_readers_and_invalid_to_writers() {
    let reg = TestRegistry::start().await.expect("start");
    let (c, base) = (client(), reg.url());
    push_image(&c, &base, "app", "v1", "ref").await;
    for reference in [".INVALID_MANIFEST_NAME", "-dash", "a%2Fb"] {
        let url = format!("{base}/v2/app/manifests/{reference}");
        assert_error(c.get(&url).send().await.expect("get"), StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
        let head = c.head(&url).send().await.expect("head");
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "HEAD {reference}");
        assert_error(c.delete(&url).send().await.expect("delete"), StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN").await;
        let put = c.put(&url).header("content-type", OCI_MANIFEST).body("{}").send().await.expect("put");
        assert_error(put, StatusCode::BAD_REQUEST, "TAG_INVALID").await;
    }
    // The name is still checked first.
    assert_error(
        c.get(format!("{base}/v2/App/manifests/.bad")).send().await.expect("get"),
        StatusCode::BAD_REQUEST,
        "NAME_INVALID",
    )
    .await;
}

/// A request head larger than the limit gets 431 with the spec's JSON body (hyper alone would
/// send an empty one), and the connection closes.
#[tokio::test]
async fn an_oversized_request_head_gets_a_json_431() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limit = 16 << 10;
    let options = registry_http::ServerOptions { max_header_bytes: limit, ..Default::default() };
    let reg = TestRegistry::builder().server_options(options).start().await.expect("start");
    for size in [limit + 1024, 4 * limit] {
        let mut s = tokio::net::TcpStream::connect(reg.addr()).await.expect("connect");
        let head = format!("GET /v2/ HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n", reg.host(), "a".repeat(size));
        // The server may stop reading once the head is too large: a failed write is fine.
        let _ = s.write_all(head.as_bytes()).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
        assert!(out.to_ascii_lowercase().contains("content-type: application/json"), "{out}");
        let body = out.split("\r\n\r\n").nth(1).expect("a body");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(json["errors"][0]["code"], "SIZE_INVALID");
        assert!(json["errors"][0]["message"].as_str().expect("message").contains(&limit.to_string()));
    }
    // A head within the limit is served.
    let ok = client().get(format!("{}/v2/", reg.url())).header("x-fine", "a".repeat(limit / 2)).send().await;
    assert_eq!(ok.expect("get").status(), StatusCode::OK);
    reg.stop().await;
}

/// The default limit (64 KiB) is the one enforced, however the head arrives: one header of
/// 100,000 bytes sent whole is refused (hyper alone accepted it), one of 60,000 is served.
#[tokio::test]
async fn the_default_head_limit_is_the_one_enforced() {
    let reg = TestRegistry::builder().start().await.expect("start");
    let big = client().get(format!("{}/v2/", reg.url())).header("x-big", "a".repeat(100_000)).send().await;
    let big = big.expect("an answer");
    assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let json: serde_json::Value = big.json().await.expect("JSON body");
    assert_eq!(json["errors"][0]["code"], "SIZE_INVALID");
    assert!(json["errors"][0]["message"].as_str().unwrap_or_default().contains("65536"), "{json}");
    let many: Vec<(String, String)> = (0..40).map(|i| (format!("x-h{i}"), "b".repeat(2000))).collect();
    let mut request = client().get(format!("{}/v2/", reg.url()));
    for (name, value) in &many {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.expect("an answer").status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let fine = client().get(format!("{}/v2/", reg.url())).header("x-fine", "a".repeat(60_000)).send().await;
    assert_eq!(fine.expect("get").status(), StatusCode::OK);
    reg.stop().await;
}
