//! Image resolution against the real Glance of the Nova test stack (brought up once per
//! test run by `scripts/nova-test-stack.sh` under target/): tagged images are uploaded as
//! the service user, looked up by tags, and deleted again.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use osauth::services::{GenericService, VersionSelector};
use reqwest::Method;
use serde_json::{json, Value};
use trove_compute::{ComputeDriver, DriverError};
use trove_config::Config;
use trove_openstack::OpenStackDriver;

async fn driver(env: &HashMap<String, String>) -> OpenStackDriver {
    let text = format!(
        "[DEFAULT]\ntrove_security_groups_support = false\n\
         [service_credentials]\nauth_url = {}\nusername = trove\npassword = trove\n\
         project_name = service\nregion_name = RegionOne\n",
        env["AUTH_URL"]
    );
    let config = Config::from_ini_str("test.conf", &text).unwrap().config;
    OpenStackDriver::from_config(&config)
        .await
        .expect("driver logs in")
}

const GLANCE: GenericService = GenericService::new("image", VersionSelector::Major(2));

/// Creates an image with `tags` in the service project; with `upload` its data is uploaded
/// (it becomes active), else it stays queued.
async fn make_image(d: &OpenStackDriver, name: &str, tags: &[&str], upload: bool) -> String {
    let s = d.session();
    let v: Value = s
        .request(GLANCE, Method::POST, &["images"])
        .json(
            &json!({"name": name, "disk_format": "raw", "container_format": "bare",
            "tags": tags}),
        )
        .send()
        .await
        .expect("image create")
        .json()
        .await
        .unwrap();
    let id = v["id"].as_str().expect("image id").to_owned();
    if upload {
        s.request(GLANCE, Method::PUT, &["images", id.as_str(), "file"])
            .header("Content-Type", "application/octet-stream")
            .body(vec![0u8; 4096])
            .send()
            .await
            .expect("image upload");
        // The upload is synchronous with the file store; wait for `active` all the same.
        for _ in 0..50 {
            let v: Value = s
                .get_json(GLANCE, &["images", id.as_str()])
                .await
                .expect("image show");
            if v["status"] == "active" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    id
}

async fn delete_image(d: &OpenStackDriver, id: &str) {
    let r = d
        .session()
        .request(GLANCE, Method::DELETE, &["images", id])
        .send()
        .await;
    if let Err(e) = r {
        assert_eq!(
            e.kind(),
            osauth::ErrorKind::ResourceNotFound,
            "delete {id}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn newest_active_image_with_all_tags_wins() {
    let env = common::nova_stack();
    let d = driver(&env).await;
    let u = uuid::Uuid::new_v4().simple().to_string();
    let (a, b) = (
        format!("trove-a-{}", &u[..8]),
        format!("trove-b-{}", &u[..8]),
    );
    let (a, b) = (a.as_str(), b.as_str());
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // Glance's created_at has one-second steps: keep the images a second apart.
    let older = make_image(&d, "older", &[a, b], true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = make_image(&d, "newer", &[b, a, "extra"], true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let only_a = make_image(&d, "only-a", &[a], true).await;
    let queued = make_image(&d, "queued", &[a, b], false).await;
    let made = [&older, &newer, &only_a, &queued];

    let both = d.resolve_image(None, &tags(&[a, b])).await;
    let just_a = d.resolve_image(Some(""), &tags(&[a])).await;
    let none = d.resolve_image(None, &tags(&[a, "no-such-tag"])).await;
    delete_image(&d, &newer).await;
    let after_delete = d.image_id_by_tags(&tags(&[a, b])).await;
    for id in made {
        delete_image(&d, id).await;
    }
    let gone = d.image_id_by_tags(&tags(&[a])).await;

    assert_eq!(both.unwrap().as_deref(), Some(newer.as_str()));
    assert_eq!(just_a.unwrap().as_deref(), Some(only_a.as_str()));
    match none {
        Err(DriverError::Invalid(msg)) => {
            assert!(msg.contains("no-such-tag") && msg.contains(a), "{msg}")
        }
        other => panic!("expected no image, got {other:?}"),
    }
    assert_eq!(after_delete.unwrap(), older);
    assert!(matches!(gone, Err(DriverError::Invalid(_))), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_id_must_exist_in_glance() {
    let env = common::nova_stack();
    let d = driver(&env).await;
    let image = env["IMAGE_ID"].as_str();
    // An id is taken as it is when Glance has it, whatever tags the version has too.
    let r = d
        .resolve_image(Some(image), &["no-such-tag".to_string()])
        .await;
    assert_eq!(r.unwrap().as_deref(), Some(image));
    assert!(d.image_exists(image).await.unwrap());

    let missing = uuid::Uuid::new_v4().to_string();
    assert!(!d.image_exists(&missing).await.unwrap());
    match d.resolve_image(Some(&missing), &[]).await {
        Err(DriverError::Invalid(msg)) => assert!(msg.contains(&missing), "{msg}"),
        other => panic!("expected a missing image, got {other:?}"),
    }
    match d.resolve_image(None, &[]).await {
        Err(DriverError::Invalid(msg)) => assert!(msg.contains("neither"), "{msg}"),
        other => panic!("expected no image, got {other:?}"),
    }
}
