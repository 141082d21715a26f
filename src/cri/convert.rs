//! Conversions between CRI messages and pinshim's domain types.

use crate::api;
use crate::image::{AuthFields, FsUsage, ImageView};

pub fn image(view: ImageView) -> api::Image {
    let id = view.id;
    api::Image {
        id: id.clone(),
        repo_tags: view.repo_tags,
        repo_digests: view.repo_digests,
        size: view.size,
        uid: view.uid.map(|value| api::Int64Value { value }),
        username: view.username,
        // One store serves every runtime handler: the default's is reported.
        spec: Some(api::ImageSpec { image: id.clone(), ..Default::default() }),
        pinned: view.pinned,
    }
}

pub fn auth_fields(auth: api::AuthConfig) -> AuthFields {
    AuthFields {
        username: auth.username,
        password: auth.password,
        auth: auth.auth,
        server_address: auth.server_address,
        identity_token: auth.identity_token,
        registry_token: auth.registry_token,
    }
}

pub fn filesystem_usage(usage: FsUsage) -> api::FilesystemUsage {
    api::FilesystemUsage {
        timestamp: usage.timestamp,
        fs_id: Some(api::FilesystemIdentifier { mountpoint: usage.mountpoint }),
        used_bytes: Some(api::UInt64Value { value: usage.used_bytes }),
        inodes_used: Some(api::UInt64Value { value: usage.inodes_used }),
    }
}
