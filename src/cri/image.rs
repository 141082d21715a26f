//! ImageService: unwraps each request, calls the image domain, wraps the answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::status::missing;
use super::{ResponseStream, batched, convert};
use crate::api::{self, image_service_server::ImageService};
use crate::image::{Credentials, ImageService as Images};

pub struct ImageApi {
    images: Arc<Images>,
}

impl ImageApi {
    pub fn new(images: Arc<Images>) -> Self {
        ImageApi { images }
    }
}

fn spec_of(spec: Option<api::ImageSpec>) -> Result<String, Status> {
    let image = spec.map(|s| s.image).unwrap_or_default();
    if image.is_empty() {
        return Err(missing("image.image"));
    }
    Ok(image)
}

fn filter_of(filter: Option<api::ImageFilter>) -> Option<String> {
    filter.and_then(|f| f.image).map(|s| s.image).filter(|s| !s.is_empty())
}

type ImageStream = ResponseStream<api::StreamImagesResponse>;

#[tonic::async_trait]
impl ImageService for ImageApi {
    #[tracing::instrument(skip_all, fields(filter))]
    async fn list_images(
        &self,
        request: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        let filter = filter_of(request.into_inner().filter);
        tracing::Span::current().record("filter", filter.as_deref().unwrap_or_default());
        let images = self.images.list(filter.as_deref()).await?;
        Ok(Response::new(api::ListImagesResponse { images: images.into_iter().map(convert::image).collect() }))
    }

    type StreamImagesStream = ImageStream;

    #[tracing::instrument(skip_all)]
    async fn stream_images(&self, request: Request<api::StreamImagesRequest>) -> Result<Response<ImageStream>, Status> {
        let filter = filter_of(request.into_inner().filter);
        let images: Vec<api::Image> =
            self.images.list(filter.as_deref()).await?.into_iter().map(convert::image).collect();
        Ok(batched(images, |images| api::StreamImagesResponse { images }))
    }

    #[tracing::instrument(skip_all, fields(image))]
    async fn image_status(
        &self,
        request: Request<api::ImageStatusRequest>,
    ) -> Result<Response<api::ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let spec = spec_of(request.image)?;
        tracing::Span::current().record("image", spec.as_str());
        let Some(status) = self.images.status(&spec).await? else {
            return Ok(Response::new(api::ImageStatusResponse::default()));
        };
        let mut info = std::collections::HashMap::new();
        if request.verbose {
            let resolved: BTreeMap<_, _> = status.resolved_tags.iter().cloned().collect();
            let store = self.images.store_view(&status.image.id).await?;
            let verbose = serde_json::json!({
                "imageId": status.image.id,
                "imageStore": store.store,
                "configDigest": store.config_digest.clone().unwrap_or_default(),
                "configDigestReason": match store.config_digest {
                    Some(_) => "",
                    None => "the containerd image store does not report the config digest; platformManifests name each platform's image",
                },
                "platformManifests": store.platform_manifests,
                "canonicalImageId": status.canonical.clone().unwrap_or_default(),
                "canonicalImageIdReason": status.canonical_reason.clone().unwrap_or_default(),
                "resolvedTags": resolved,
            });
            info.insert("info".to_string(), verbose.to_string());
        }
        Ok(Response::new(api::ImageStatusResponse { image: Some(convert::image(status.image)), info }))
    }

    #[tracing::instrument(skip_all, fields(image))]
    async fn pull_image(
        &self,
        request: Request<api::PullImageRequest>,
    ) -> Result<Response<api::PullImageResponse>, Status> {
        let request = request.into_inner();
        let handler = request.image.as_ref().map(|s| s.runtime_handler.clone()).unwrap_or_default();
        let spec = spec_of(request.image)?;
        tracing::Span::current().record("image", spec.as_str());
        let registry = Images::parse(&spec)?.repository().registry().to_string();
        let auth = match request.auth {
            Some(auth) => Credentials::from_auth_fields(convert::auth_fields(auth), &registry)?,
            None => None,
        };
        // Asks Docker, so after the checks that need no answer from it.
        self.images.check_runtime_handler(&handler).await?;
        let pulled = self.images.pull(&spec, auth).await?;
        tracing::info!(image_id = %pulled.image_id, canonical = %pulled.canonical, "pulled");
        Ok(Response::new(api::PullImageResponse { image_ref: pulled.image_id }))
    }

    #[tracing::instrument(skip_all, fields(image))]
    async fn remove_image(
        &self,
        request: Request<api::RemoveImageRequest>,
    ) -> Result<Response<api::RemoveImageResponse>, Status> {
        let spec = spec_of(request.into_inner().image)?;
        tracing::Span::current().record("image", spec.as_str());
        self.images.remove(&spec).await?;
        Ok(Response::new(api::RemoveImageResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn image_fs_info(
        &self,
        _: Request<api::ImageFsInfoRequest>,
    ) -> Result<Response<api::ImageFsInfoResponse>, Status> {
        let usage = convert::filesystem_usage(self.images.fs_usage().await?);
        Ok(Response::new(api::ImageFsInfoResponse {
            image_filesystems: vec![usage],
            // Empty means containers write to the image filesystem, as they do under Docker.
            container_filesystems: Vec::new(),
        }))
    }
}
