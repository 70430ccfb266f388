//! Quotas under concurrent creates (api.md §14, internals-workflows.md §12): twenty
//! `POST /instances` at once across two projects end with exactly the allowed number
//! created, the rest refused with 413, and usage equal to what was created, on every
//! backend of `TROVE_TEST_BACKENDS`.

mod common;

use common::{send, TestApp, PROJECT};
use reqwest::Method;
use serde_json::{json, Value};

const OTHER: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn body(name: &str) -> Value {
    json!({"instance": {
        "name": name, "flavorRef": 2, "volume": {"size": 1},
        "datastore": {"type": "mariadb", "version": "10.11"}
    }})
}

async fn in_use(app: &TestApp, project: &str) -> (i64, i64) {
    let r = app.get_admin(&format!("/mgmt/quotas/{project}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let line = v["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["resource"] == "instances")
        .unwrap()
        .clone();
    (
        line["in_use"].as_i64().unwrap(),
        line["reserved"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn concurrent_creates_end_with_exact_quotas_on_every_backend() {
    for backend in trove_db::testing::backends() {
        let app = TestApp::start_on(backend).await;
        app.seed().await;
        let r = send(
            app.v1_admin(Method::PUT, &format!("/mgmt/quotas/{OTHER}"))
                .json(&json!({"quotas": {"instances": 5}})),
        )
        .await;
        assert_eq!(r.status, 200, "{backend}: {}", r.text);

        // 12 requests for PROJECT (limit 10 by default), 8 for OTHER (limit 5).
        let requests: Vec<_> = (0..20)
            .map(|n| {
                let project = if n % 5 < 3 { PROJECT } else { OTHER };
                let rb = app
                    .request(Method::POST, &format!("/v1.0/{project}/instances"))
                    .json(&body(&format!("db-{n}")));
                async move { (project, send(rb).await) }
            })
            .collect();
        let answers = futures::future::join_all(requests).await;

        for (project, limit, asked) in [(PROJECT, 10, 12), (OTHER, 5, 8)] {
            let mine: Vec<_> = answers.iter().filter(|(p, _)| *p == project).collect();
            assert_eq!(mine.len(), asked, "{backend}");
            let ok = mine.iter().filter(|(_, r)| r.status == 200).count();
            for (_, r) in mine.iter().filter(|(_, r)| r.status != 200) {
                assert_eq!(
                    r.fault(413, "overLimit"),
                    "Quota exceeded for resources: ['instances'].",
                    "{backend}"
                );
            }
            assert_eq!(ok, limit, "{backend}: {project} created {ok} of {asked}");
            assert_eq!(
                in_use(&app, project).await,
                (limit as i64, 0),
                "{backend}: {project}"
            );
            let listed = send(
                app.request(Method::GET, &format!("/v1.0/{project}/instances"))
                    .header("x-roles", "admin"),
            )
            .await
            .json();
            assert_eq!(
                listed["instances"].as_array().unwrap().len(),
                limit,
                "{backend}: {project}"
            );
        }
        let casts = app.taskmanager.casts();
        assert_eq!(casts.len(), 15, "{backend}");
        assert!(casts.iter().all(|(_, m, _)| m == "create_instance"));
    }
}
