//! Pushes images to the test registries over the distribution API, so each
//! test owns a repository, a tag and an image ID nobody else touches.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest, Sha256};

pub struct Pushed {
    /// The manifest digest the registry serves for the new tag.
    pub digest: String,
    /// The digest of the image's config.
    pub config_digest: String,
}

impl Pushed {
    /// Docker's image ID once pulled: the config digest, or with the
    /// containerd image store the manifest digest.
    pub async fn image_id(&self) -> String {
        match super::containerd_store().await {
            true => self.digest.clone(),
            false => self.config_digest.clone(),
        }
    }

    /// What verbose ImageStatus reports as `configDigest`: empty where the
    /// store does not tell it.
    pub async fn reported_config_digest(&self) -> String {
        match super::containerd_store().await {
            true => String::new(),
            false => self.config_digest.clone(),
        }
    }
}

fn client() -> Client {
    Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() })
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Copies `source` (same registry) to `target` with a config made unique by
/// `nonce`, so the result has its own manifest digest and image ID.
pub async fn push_variant(source: &str, target: &str, nonce: &str, auth: &RegistryAuth) -> Pushed {
    push_variant_with(source, target, nonce, auth, |_| {}).await
}

/// Like `push_variant`, with `edit` changing the image config first (its
/// `config` object holds what a Dockerfile sets: STOPSIGNAL, ENV, …).
pub async fn push_variant_with(
    source: &str,
    target: &str,
    nonce: &str,
    auth: &RegistryAuth,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Pushed {
    let client = client();
    let source: Reference = source.parse().expect("source reference");
    let target: Reference = target.parse().expect("target reference");
    client.auth(&target, auth, RegistryOperation::Push).await.expect("registry auth");
    let (mut manifest, _, config) = client.pull_manifest_and_config(&source, auth).await.expect("source manifest");

    let mut config: serde_json::Value = serde_json::from_str(&config).expect("config JSON");
    let labels = &mut config["config"]["Labels"];
    if !labels.is_object() {
        *labels = serde_json::json!({});
    }
    labels["io.pinshim.test.nonce"] = serde_json::Value::String(nonce.to_string());
    edit(&mut config);
    let config = serde_json::to_vec(&config).expect("config bytes");
    let config_digest = sha256(&config);
    client.push_blob(&target, config.clone(), &config_digest).await.expect("push config");
    for layer in &manifest.layers {
        client.mount_blob(&target, &source, &layer.digest).await.expect("mount layer");
    }
    manifest.config.digest = config_digest.clone();
    manifest.config.size = config.len() as i64;

    let body = serde_json::to_vec(&manifest).expect("manifest bytes");
    let media_type =
        manifest.media_type.clone().unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let content_type = http::HeaderValue::from_str(&media_type).expect("media type");
    client.push_manifest_raw(&target, body.clone(), content_type).await.expect("push manifest");
    Pushed { digest: sha256(&body), config_digest }
}

/// The digest the registry serves for `reference` right now.
pub async fn served_digest(reference: &str, auth: &RegistryAuth) -> String {
    let reference: Reference = reference.parse().expect("reference");
    let accepted = [
        oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
        oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
        oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
    ];
    let (_, digest) = client().pull_manifest_raw(&reference, auth, &accepted).await.expect("manifest");
    digest
}

/// Pushes to `target` an image made FROM scratch of `layers`, each a list
/// of `(path, contents)` files, lowest layer first. It holds no program: a
/// volume image needs none.
pub async fn push_files_image(target: &str, layers: &[&[(&str, &str)]]) -> Pushed {
    let client = client();
    let target: Reference = target.parse().expect("target reference");
    let auth = RegistryAuth::Anonymous;
    client.auth(&target, &auth, RegistryOperation::Push).await.expect("registry auth");
    let (mut diff_ids, mut descriptors) = (Vec::new(), Vec::new());
    for files in layers {
        let tar = tar_of(files);
        diff_ids.push(sha256(&tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).expect("gzip");
        let blob = gz.finish().expect("gzip");
        let digest = sha256(&blob);
        client.push_blob(&target, blob.clone(), &digest).await.expect("push layer");
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": blob.len(),
        }));
    }
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "config": {"Labels": {"io.pinshim.test.nonce": super::unique("files")}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).expect("config bytes");
    let config_digest = sha256(&config);
    client.push_blob(&target, config.clone(), &config_digest).await.expect("push config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": descriptors,
    });
    let body = serde_json::to_vec(&manifest).expect("manifest bytes");
    let content_type = http::HeaderValue::from_static(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE);
    client.push_manifest_raw(&target, body.clone(), content_type).await.expect("push manifest");
    Pushed { digest: sha256(&body), config_digest }
}

/// A tar of `files` (with their parent directories), made by tar(1).
fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, contents) in files {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
        std::fs::write(&file, contents).expect("write file");
    }
    let out = std::process::Command::new("tar")
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(dir.path())
        .args(["-cf", "-", "."])
        .output()
        .expect("run tar");
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
