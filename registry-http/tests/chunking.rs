//! Invariant over real HTTP: however a blob is split into PATCH requests (and whether the last
//! piece rides on the PUT), the registry stores exactly the blob under its digest.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use registry_core::Digest;
use registry_http::TestRegistry;
use reqwest::StatusCode;
use testkit::*;

#[test]
fn any_chunking_over_http_stores_the_blob() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let reg = rt.block_on(TestRegistry::start()).expect("start");
    let base = reg.url();
    let c = client();
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..40_000),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        any::<bool>(),
    );
    let mut runner = TestRunner::new(Config { cases: 24, ..Config::default() });
    runner
        .run(&strategy, |(data, cuts, last_on_put)| {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
            points.sort_unstable();
            points.dedup();
            points.push(data.len());
            let digest = Digest::sha256_of(&data);
            rt.block_on(async {
                let location =
                    header(&c.post(format!("{base}/v2/prop/blobs/uploads/")).send().await.expect("post"), "location");
                let mut last = 0;
                let pieces = points.len();
                for (i, p) in points.iter().copied().enumerate() {
                    if last_on_put && i + 1 == pieces {
                        break;
                    }
                    let resp = c
                        .patch(format!("{base}{location}"))
                        .header("content-range", format!("{last}-{}", p.max(last + 1) - 1))
                        .body(data[last..p].to_vec())
                        .send()
                        .await
                        .expect("patch");
                    // An empty chunk has no valid Content-Range; the registry says so with 416.
                    if p == last {
                        prop_assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
                    } else {
                        prop_assert_eq!(resp.status(), StatusCode::ACCEPTED);
                    }
                    last = p;
                }
                let resp = c
                    .put(format!("{base}{location}?digest={digest}"))
                    .body(data[last..].to_vec())
                    .send()
                    .await
                    .expect("put");
                prop_assert_eq!(resp.status(), StatusCode::CREATED);
                let got = c
                    .get(format!("{base}/v2/prop/blobs/{digest}"))
                    .send()
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body");
                prop_assert_eq!(got.as_ref(), data.as_slice());
                Ok(())
            })
        })
        .expect("property holds");
    drop(reg);
}
