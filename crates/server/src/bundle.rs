//! Batch and transaction Bundles, shared by `POST /fhir` and `haven load`.
//!
//! A transaction is planned into one list of [`store::Write`]s and committed in one store
//! transaction, so a failure leaves nothing behind. Planning follows FHIR's transaction rules:
//! - entries are processed in the order DELETE, POST, PUT, GET (responses keep the Bundle's
//!   order); PATCH is not supported;
//! - a POST gets a new server id, and every reference to its `fullUrl` (`urn:uuid:…`, or an
//!   absolute URL) is rewritten to `Type/id`; a PUT keeps the id of its URL;
//! - `ifNoneExist` (conditional create), conditional PUT and DELETE URLs (`Type?query`) and
//!   conditional references (`Organization?identifier=system|value`) are searched: one match
//!   is used, none creates (create, PUT) or fails (reference), several fail with 412;
//! - a `urn:uuid:` reference that names no entry fails the transaction (400);
//! - GET entries (read, vread, search) run after the commit.
//!
//! Conditional searches also see the resources created earlier in the same plan when the
//! query is `identifier=[system|]value`, so a transaction (or a batch of bundles loaded
//! together) may create an Organization and refer to it by identifier. A [`Resolver`] caches
//! the searches that found exactly one resource.
//!
//! A batch runs each entry on its own, reporting failures per entry.

use std::collections::HashMap;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use sha2::Digest;
use store::{Store, Write, WriteKind, WriteOutcome};

use crate::ServerConfig;
use crate::outcome::{FhirError, Issue, operation_outcome};
use crate::respond::{BundleOut, EntryOut, Return, etag, raw};
use crate::search::Search;

/// What a planner needs: the store, the public base URL and the configuration.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The public base URL, without a trailing `/`.
    pub base_url: &'a str,
    /// The configuration (page sizes for GET entries).
    pub config: &'a ServerConfig,
}

/// The HTTP method of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    /// Processing order within a transaction.
    fn rank(self) -> u8 {
        match self {
            Method::Delete => 0,
            Method::Post => 1,
            Method::Put => 2,
            Method::Get => 3,
        }
    }
}

/// An entry's request URL, relative to the base.
#[derive(Debug, Clone)]
struct Target {
    resource_type: &'static str,
    /// `[Type, id]` or `[Type, id, _history, vid]` segments after the type.
    id: Option<String>,
    version: Option<u64>,
    /// The query after `?`, when there is one.
    query: Option<String>,
}

/// One checked entry.
#[derive(Debug)]
struct Entry {
    index: usize,
    method: Method,
    target: Target,
    full_url: Option<String>,
    resource: Option<Value>,
    if_none_exist: Option<String>,
    if_match: Option<u64>,
}

/// What the plan does for one entry.
#[derive(Debug, Clone)]
enum Action {
    /// The write at this index of [`Plan::writes`].
    Write(usize),
    /// A conditional create that matched this existing resource.
    Existing { resource_type: String, id: String },
    /// A conditional delete that matched nothing.
    NothingToDelete,
    /// A GET, run after the commit.
    Get(Target),
}

/// A planned transaction: the writes to commit, and what each entry does.
#[derive(Debug)]
pub struct Plan {
    /// The writes, in processing order.
    pub writes: Vec<Write>,
    actions: Vec<Action>,
}

impl Plan {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the Bundle had no entries.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The types of the conditional creates that matched an existing resource, one per entry.
    pub fn matched_types(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().filter_map(|action| match action {
            Action::Existing { resource_type, .. } => Some(resource_type.as_str()),
            _ => None,
        })
    }

    /// For a one-entry plan whose conditional create matched: that resource's type and id.
    pub fn existing(&self) -> Option<(&str, &str)> {
        match self.actions.as_slice() {
            [Action::Existing { resource_type, id }] => Some((resource_type, id)),
            _ => None,
        }
    }
}

/// A key of the index of identifiers of resources created in the current plan:
/// type, system (`None` matches any), value.
type IdentifierKey = (String, Option<String>, String);

/// Resolves conditional searches, remembering unique matches and the identifiers of resources
/// created by plans not yet committed (see the module documentation).
#[derive(Debug, Default)]
pub struct Resolver {
    cache: HashMap<String, String>,
    /// Identifiers of created resources: the id, and the [`Seal`] their plan falls under.
    pending: HashMap<IdentifierKey, (String, Seal)>,
    /// The seal of the plans being made.
    open: Seal,
    stable_ids: bool,
}

/// A mark between the plans made before and after [`Resolver::seal`], so that the identifiers
/// of plans handed to a store transaction can be forgotten once it commits, while later plans
/// are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seal(u64);

impl Resolver {
    /// A resolver with nothing cached, for `POST /fhir`: created resources get new random ids.
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// A resolver for loads, where the same Bundle planned twice must give the same writes:
    /// a POST entry's id is the UUID of its `urn:uuid:` fullUrl (or, without one, a hash of
    /// its content), and creates and updates are [`Write::Upsert`]s, so loading again writes
    /// nothing new.
    pub fn stable() -> Resolver {
        Resolver {
            stable_ids: true,
            ..Resolver::default()
        }
    }

    /// Closes the plans made so far (about to be committed) under a seal.
    pub fn seal(&mut self) -> Seal {
        let sealed = self.open;
        self.open = Seal(sealed.0 + 1);
        sealed
    }

    /// Forgets the identifiers of resources created by the plans under `seal` and before
    /// (they are committed: searches find them), keeping the cached unique matches.
    pub fn committed(&mut self, seal: Seal) {
        self.pending.retain(|_, (_, of)| *of > seal);
    }

    /// The ids of the resources of `resource_type` matching `query` (at most two: enough to
    /// tell one from several).
    fn find(
        &mut self,
        context: Context<'_>,
        resource_type: &str,
        query: &str,
    ) -> Result<Vec<String>, FhirError> {
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if let [(name, value)] = params.as_slice()
            && name == "identifier"
            && !value.contains(',')
        {
            let (system, value) = match value.split_once('|') {
                Some((system, value)) => (Some(system.to_owned()), value.to_owned()),
                None => (None, value.clone()),
            };
            let key = (resource_type.to_owned(), system, value);
            if let Some((id, _)) = self.pending.get(&key) {
                return Ok(vec![id.clone()]);
            }
        }
        let cache_key = format!("{resource_type}?{query}");
        if let Some(id) = self.cache.get(&cache_key) {
            return Ok(vec![id.clone()]);
        }
        if params.is_empty() {
            return Err(FhirError::bad_request(
                "a conditional URL has no search parameters",
            ));
        }
        let mut search = Search::parse(resource_type, &params, context.config, false)?;
        search.query.count = 2;
        search.query.total = false;
        let ids: Vec<String> = context
            .store
            .search(&search.query)?
            .resources
            .into_iter()
            .map(|resource| resource.id)
            .collect();
        if let [id] = ids.as_slice() {
            self.cache.insert(cache_key, id.clone());
        }
        Ok(ids)
    }

    /// Records the identifiers of a resource about to be created; returns the keys added.
    fn remember(&mut self, resource_type: &str, id: &str, resource: &Value) -> Vec<IdentifierKey> {
        let mut added = Vec::new();
        let identifiers = match resource.get("identifier") {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(item @ Value::Object(_)) => vec![item],
            _ => Vec::new(),
        };
        for identifier in identifiers {
            let Some(value) = identifier.get("value").and_then(Value::as_str) else {
                continue;
            };
            let system = identifier.get("system").and_then(Value::as_str);
            for system in [system.map(str::to_owned), None] {
                let key = (resource_type.to_owned(), system, value.to_owned());
                if !self.pending.contains_key(&key) {
                    self.pending.insert(key.clone(), (id.to_owned(), self.open));
                    added.push(key);
                }
            }
        }
        added
    }
}

/// `Bundle.type`, checked: `transaction` or `batch`.
pub fn bundle_type(bundle: &Value) -> Result<&str, FhirError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(FhirError::bad_request(
            "POST to the base URL takes a Bundle of type batch or transaction",
        ));
    }
    match bundle.get("type").and_then(Value::as_str) {
        Some(kind @ ("transaction" | "batch")) => Ok(kind),
        _ => Err(FhirError::bad_request(
            "Bundle.type must be batch or transaction",
        ))
        .map_err(|e| e.at("Bundle.type")),
    }
}

/// The entries of a Bundle, checked.
fn entries(context: Context<'_>, bundle: Value) -> Result<Vec<Entry>, FhirError> {
    let Value::Object(mut bundle) = bundle else {
        return Err(FhirError::bad_request("a Bundle must be a JSON object"));
    };
    let items = match bundle.remove("entry") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(FhirError::bad_request("Bundle.entry must be an array").at("Bundle.entry"));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| entry(context, index, item))
        .collect()
}

fn entry(context: Context<'_>, index: usize, item: Value) -> Result<Entry, FhirError> {
    let at = |field: &str| format!("Bundle.entry[{index}]{field}");
    let Value::Object(mut item) = item else {
        return Err(FhirError::bad_request("a Bundle entry must be an object").at(at("")));
    };
    let request = match item.remove("request") {
        Some(Value::Object(request)) => request,
        _ => {
            return Err(FhirError::bad_request("the entry has no request").at(at(".request")));
        }
    };
    let text = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
    let method = match text("method").as_deref() {
        Some("GET" | "HEAD") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        Some("PATCH") => {
            return Err(FhirError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                "PATCH is not supported",
            )
            .at(at(".request.method")));
        }
        _ => {
            return Err(
                FhirError::bad_request("request.method must be GET, POST, PUT or DELETE")
                    .at(at(".request.method")),
            );
        }
    };
    let url = text("url").ok_or_else(|| {
        FhirError::bad_request("the entry has no request.url").at(at(".request.url"))
    })?;
    let target = parse_target(context.base_url, &url).map_err(|e| e.at(at(".request.url")))?;
    let if_match = match text("ifMatch") {
        None => None,
        Some(value) => {
            let value = value
                .strip_prefix("W/")
                .unwrap_or(&value)
                .trim_matches('"')
                .to_owned();
            Some(value.parse().map_err(|_| {
                FhirError::bad_request("ifMatch must be a version ETag such as W/\"1\"")
                    .at(at(".request.ifMatch"))
            })?)
        }
    };
    let resource = item.remove("resource");
    if matches!(method, Method::Post | Method::Put) {
        let Some(resource) = &resource else {
            return Err(
                FhirError::bad_request("a POST or PUT entry needs a resource").at(at(".resource")),
            );
        };
        if resource.get("resourceType").and_then(Value::as_str) != Some(target.resource_type) {
            return Err(FhirError::bad_request(format!(
                "the resource is not a {} as its request.url says",
                target.resource_type
            ))
            .at(at(".resource.resourceType")));
        }
        if method == Method::Put
            && let (Some(url_id), Some(id)) = (&target.id, resource.get("id"))
            && id.as_str() != Some(url_id.as_str())
        {
            return Err(
                FhirError::bad_request("the resource id does not match request.url")
                    .at(at(".resource.id")),
            );
        }
        if method == Method::Put && target.id.is_none() && target.query.is_none() {
            return Err(
                FhirError::bad_request("a PUT URL needs an id or a search").at(at(".request.url"))
            );
        }
    }
    if method == Method::Delete && target.id.is_none() && target.query.is_none() {
        return Err(
            FhirError::bad_request("a DELETE URL needs an id or a search").at(at(".request.url")),
        );
    }
    Ok(Entry {
        index,
        method,
        target,
        full_url: item
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource,
        if_none_exist: text("ifNoneExist"),
        if_match,
    })
}

/// Parses a request URL: `Type`, `Type/id`, `Type/id/_history/vid`, `Type?query`, relative
/// or under this server's base URL.
fn parse_target(base_url: &str, url: &str) -> Result<Target, FhirError> {
    let relative = url
        .strip_prefix(base_url)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(url);
    if relative.contains("://") {
        return Err(FhirError::bad_request(
            "request.url must be relative to this server",
        ));
    }
    let (path, query) = match relative.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (relative, None),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(first) = segments.first() else {
        return Err(FhirError::bad_request("request.url names no resource type"));
    };
    let resource_type = fhir::types::intern(first)
        .filter(|t| fhir::types::is_concrete_resource_type(t))
        .ok_or_else(|| FhirError::unknown_type(first))?;
    let id = segments.get(1).map(|id| (*id).to_owned());
    if let Some(id) = &id
        && !fhir::reference::is_valid_id(id)
    {
        return Err(FhirError::bad_request("request.url has an invalid id"));
    }
    let version = match segments.get(2..) {
        None | Some([]) => None,
        Some(["_history", version]) => Some(
            version
                .parse()
                .map_err(|_| FhirError::bad_request("request.url has an invalid version"))?,
        ),
        Some(_) => {
            return Err(FhirError::bad_request(
                "request.url is not a supported interaction",
            ));
        }
    };
    Ok(Target {
        resource_type,
        id,
        version,
        query,
    })
}

/// The `Type/id` a `fullUrl` stands for after planning.
type UrlMap = HashMap<String, String>;

/// Plans a transaction Bundle (or, for `haven load`, a batch Bundle treated as one).
pub fn plan(
    context: Context<'_>,
    resolver: &mut Resolver,
    bundle: Value,
) -> Result<Plan, FhirError> {
    let entries = entries(context, bundle)?;
    let mut added = Vec::new();
    let result = plan_entries(context, resolver, entries, &mut added);
    if result.is_err() {
        for key in added {
            resolver.pending.remove(&key);
        }
    }
    result
}

fn plan_entries(
    context: Context<'_>,
    resolver: &mut Resolver,
    mut entries: Vec<Entry>,
    added: &mut Vec<IdentifierKey>,
) -> Result<Plan, FhirError> {
    let count = entries.len();
    entries.sort_by_key(|entry| (entry.method.rank(), entry.index));
    let mut urls = UrlMap::new();
    let mut actions: Vec<Option<Action>> = vec![None; count];
    // First pass: ids for every write, and the fullUrl map.
    let mut planned: Vec<(Entry, Option<String>)> = Vec::with_capacity(count);
    for mut entry in entries {
        let at = format!("Bundle.entry[{}]", entry.index);
        let resource_type = entry.target.resource_type;
        let id = match entry.method {
            Method::Get => {
                actions[entry.index] = Some(Action::Get(entry.target.clone()));
                None
            }
            Method::Delete => match (&entry.target.id, &entry.target.query) {
                (Some(id), _) => Some(id.clone()),
                (None, Some(query)) => {
                    let ids = resolver
                        .find(context, resource_type, query)
                        .map_err(|e| e.at(format!("{at}.request.url")))?;
                    match ids.as_slice() {
                        [] => {
                            actions[entry.index] = Some(Action::NothingToDelete);
                            None
                        }
                        [id] => Some(id.clone()),
                        _ => return Err(several(resource_type).at(format!("{at}.request.url"))),
                    }
                }
                (None, None) => None,
            },
            Method::Post => {
                let existing = match &entry.if_none_exist {
                    Some(query) => resolver
                        .find(context, resource_type, query.trim_start_matches('?'))
                        .map_err(|e| e.at(format!("{at}.request.ifNoneExist")))?,
                    None => Vec::new(),
                };
                match existing.as_slice() {
                    [] => {
                        let id = if resolver.stable_ids {
                            stable_id(entry.full_url.as_deref(), entry.resource.as_ref())
                        } else {
                            store::new_id()
                        };
                        if let Some(resource) = &entry.resource {
                            added.extend(resolver.remember(resource_type, &id, resource));
                        }
                        Some(id)
                    }
                    [id] => {
                        if let Some(full_url) = &entry.full_url {
                            urls.insert(full_url.clone(), format!("{resource_type}/{id}"));
                        }
                        actions[entry.index] = Some(Action::Existing {
                            resource_type: resource_type.to_owned(),
                            id: id.clone(),
                        });
                        None
                    }
                    _ => return Err(several(resource_type).at(format!("{at}.request.ifNoneExist"))),
                }
            }
            Method::Put => match (&entry.target.id, &entry.target.query) {
                (Some(id), _) => Some(id.clone()),
                (None, Some(query)) => {
                    let ids = resolver
                        .find(context, resource_type, query)
                        .map_err(|e| e.at(format!("{at}.request.url")))?;
                    match ids.as_slice() {
                        [] => {
                            let id = entry
                                .resource
                                .as_ref()
                                .and_then(|r| r.get("id"))
                                .and_then(Value::as_str)
                                .filter(|id| fhir::reference::is_valid_id(id))
                                .map_or_else(store::new_id, str::to_owned);
                            Some(id)
                        }
                        [id] => Some(id.clone()),
                        _ => return Err(several(resource_type).at(format!("{at}.request.url"))),
                    }
                }
                (None, None) => None,
            },
        };
        if let (Some(id), Some(resource)) = (&id, entry.resource.as_mut()) {
            if let Some(object) = resource.as_object_mut() {
                set_id(object, id);
            }
            if let Some(full_url) = &entry.full_url {
                let local = format!("{resource_type}/{id}");
                if let Some(old) = absolute_tail(full_url)
                    && old != local
                {
                    urls.insert(old, local.clone());
                }
                urls.insert(full_url.clone(), local);
            }
        }
        planned.push((entry, id));
    }
    // Second pass: rewrite references, and emit the writes in processing order.
    let mut writes = Vec::with_capacity(planned.len());
    for (entry, id) in planned {
        let Some(id) = id else { continue };
        let at = format!("Bundle.entry[{}].resource", entry.index);
        let write = match entry.method {
            Method::Delete => Write::Delete {
                resource_type: entry.target.resource_type.to_owned(),
                id,
                if_match: entry.if_match,
            },
            Method::Post | Method::Put => {
                let mut resource = entry
                    .resource
                    .expect("checked: POST and PUT have a resource");
                rewrite_references(&mut resource, &mut |reference, path| {
                    resolve_reference(context, resolver, &urls, reference)
                        .map_err(|e| e.at(format!("{at}{path}")))
                })?;
                if resolver.stable_ids && entry.if_match.is_none() {
                    Write::Upsert(resource)
                } else if entry.method == Method::Post {
                    Write::Create(resource)
                } else {
                    Write::Update {
                        resource,
                        if_match: entry.if_match,
                    }
                }
            }
            Method::Get => continue,
        };
        actions[entry.index] = Some(Action::Write(writes.len()));
        writes.push(write);
    }
    let actions = actions
        .into_iter()
        .map(|action| action.unwrap_or(Action::NothingToDelete))
        .collect();
    Ok(Plan { writes, actions })
}

fn several(resource_type: &str) -> FhirError {
    FhirError::new(
        StatusCode::PRECONDITION_FAILED,
        "multiple-matches",
        format!("the search matches more than one {resource_type}"),
    )
}

/// The id a load gives a created resource: the UUID of a `urn:uuid:` fullUrl when it is a
/// valid id, otherwise a hash of the resource as given (the same content, the same id).
pub fn stable_id(full_url: Option<&str>, resource: Option<&Value>) -> String {
    if let Some(uuid) = full_url.and_then(|url| url.strip_prefix("urn:uuid:"))
        && fhir::reference::is_valid_id(uuid)
    {
        return uuid.to_owned();
    }
    let text = resource.map(Value::to_string).unwrap_or_default();
    let digest = sha2::Sha256::digest(text.as_bytes());
    hex::encode(&digest[..16])
}

/// Sets `id`, keeping it first after `resourceType` when the resource had none.
pub(crate) fn set_id(object: &mut Map<String, Value>, id: &str) {
    if let Some(existing) = object.get_mut("id") {
        *existing = Value::String(id.to_owned());
        return;
    }
    let old = std::mem::take(object);
    let mut fields = old.into_iter();
    if let Some((key, value)) = fields.next() {
        object.insert(key, value);
    }
    object.insert("id".to_owned(), Value::String(id.to_owned()));
    object.extend(fields);
}

/// `Type/id` of an absolute `fullUrl` ending in `…/Type/id`.
fn absolute_tail(full_url: &str) -> Option<String> {
    if !full_url.starts_with("http://") && !full_url.starts_with("https://") {
        return None;
    }
    let mut parts = full_url.rsplitn(3, '/');
    let id = parts.next()?;
    let resource_type = parts.next()?;
    fhir::types::is_concrete_resource_type(resource_type).then(|| format!("{resource_type}/{id}"))
}

/// The rewritten form of a reference, or `None` to keep it.
fn resolve_reference(
    context: Context<'_>,
    resolver: &mut Resolver,
    urls: &UrlMap,
    reference: &str,
) -> Result<Option<String>, FhirError> {
    if let Some(local) = urls.get(reference) {
        return Ok(Some(local.clone()));
    }
    if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
        return Err(FhirError::bad_request(
            "the reference names no entry of the Bundle",
        ));
    }
    if let Some((resource_type, query)) = reference.split_once('?')
        && !resource_type.contains('/')
    {
        let resource_type = fhir::types::intern(resource_type)
            .filter(|t| fhir::types::is_concrete_resource_type(t))
            .ok_or_else(|| {
                FhirError::bad_request("a conditional reference names an unknown type")
            })?;
        let ids = resolver.find(context, resource_type, query)?;
        return match ids.as_slice() {
            [id] => Ok(Some(format!("{resource_type}/{id}"))),
            [] => Err(FhirError::new(
                StatusCode::PRECONDITION_FAILED,
                "not-found",
                format!("a conditional reference matches no {resource_type}"),
            )),
            _ => Err(several(resource_type)),
        };
    }
    if !context.base_url.is_empty()
        && let Some(relative) = reference.strip_prefix(context.base_url)
        && let Some(relative) = relative.strip_prefix('/')
    {
        return Ok(Some(relative.to_owned()));
    }
    Ok(None)
}

/// A step of an element path.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Turns a reference (and its element path) into its rewritten form, or `None` to keep it.
type Resolve<'r> = dyn FnMut(&str, &str) -> Result<Option<String>, FhirError> + 'r;

/// Calls `resolve` on every `reference` string of `resource` (with its element path, such as
/// `.subject.reference`) and replaces those it returns a new value for.
fn rewrite_references(resource: &mut Value, resolve: &mut Resolve<'_>) -> Result<(), FhirError> {
    fn walk<'a>(
        value: &'a mut Value,
        path: &mut Vec<Step<'a>>,
        resolve: &mut Resolve<'_>,
    ) -> Result<(), FhirError> {
        match value {
            Value::Object(object) => {
                for (key, child) in object.iter_mut() {
                    if key == "reference"
                        && let Value::String(reference) = child
                    {
                        let shown = path_text(path, "reference");
                        if let Some(new) = resolve(reference, &shown)? {
                            *reference = new;
                        }
                        continue;
                    }
                    if child.is_object() || child.is_array() {
                        path.push(Step::Key(key));
                        walk(child, path, resolve)?;
                        path.pop();
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    path.push(Step::Index(index));
                    walk(child, path, resolve)?;
                    path.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }
    walk(resource, &mut Vec::new(), resolve)
}

fn path_text(path: &[Step<'_>], last: &str) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text.push('.');
    text.push_str(last);
    text
}

/// Runs a transaction Bundle: plans it, commits it in one store transaction, runs its GET
/// entries, and returns the `transaction-response` Bundle as JSON text.
pub fn transaction(
    context: Context<'_>,
    bundle: Value,
    prefer: Return,
) -> Result<String, FhirError> {
    let mut resolver = Resolver::new();
    let mut plan = plan(context, &mut resolver, bundle)?;
    let writes = std::mem::take(&mut plan.writes);
    let outcomes = context.store.transaction(writes)?;
    let mut response = BundleOut::new("transaction-response");
    for action in &plan.actions {
        response
            .entry
            .push(respond(context, action, &outcomes, prefer));
    }
    Ok(response.to_text())
}

/// Runs a batch Bundle: each entry on its own; returns the `batch-response` Bundle.
pub fn batch(context: Context<'_>, bundle: Value, prefer: Return) -> Result<String, FhirError> {
    let Value::Object(mut bundle) = bundle else {
        return Err(FhirError::bad_request("a Bundle must be a JSON object"));
    };
    let items = match bundle.remove("entry") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(FhirError::bad_request("Bundle.entry must be an array").at("Bundle.entry"));
        }
    };
    let mut response = BundleOut::new("batch-response");
    for (index, item) in items.into_iter().enumerate() {
        let one = json!({"resourceType": "Bundle", "type": "transaction", "entry": [item]});
        let result = plan(context, &mut Resolver::new(), one).and_then(|mut plan| {
            let outcomes = context
                .store
                .transaction(std::mem::take(&mut plan.writes))?;
            Ok(respond(context, &plan.actions[0], &outcomes, prefer))
        });
        response.entry.push(match result {
            Ok(entry) => entry,
            Err(mut error) => {
                for issue in &mut error.issues {
                    if let Some(expression) = &mut issue.expression {
                        *expression = expression.replacen(
                            "Bundle.entry[0]",
                            &format!("Bundle.entry[{index}]"),
                            1,
                        );
                    }
                }
                failed_entry(&error)
            }
        });
    }
    Ok(response.to_text())
}

fn failed_entry(error: &FhirError) -> EntryOut {
    EntryOut {
        response: Some(json!({
            "status": status_line(error.status),
            "outcome": error.to_outcome(),
        })),
        ..EntryOut::default()
    }
}

fn status_line(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

/// The response entry of one planned action.
fn respond(
    context: Context<'_>,
    action: &Action,
    outcomes: &[WriteOutcome],
    prefer: Return,
) -> EntryOut {
    let base_url = context.base_url;
    match action {
        Action::Write(index) => {
            let outcome = &outcomes[*index];
            let location = format!(
                "{}/{}/_history/{}",
                outcome.resource_type, outcome.id, outcome.version
            );
            let status = match outcome.kind {
                WriteKind::Created => StatusCode::CREATED,
                WriteKind::Updated => StatusCode::OK,
                WriteKind::Deleted | WriteKind::Unchanged => StatusCode::NO_CONTENT,
            };
            let mut response = json!({"status": status_line(status)});
            if matches!(outcome.kind, WriteKind::Created | WriteKind::Updated) {
                response["location"] = json!(location);
            }
            if outcome.version > 0 {
                response["etag"] = json!(etag(outcome.version));
                response["lastModified"] = json!(outcome.last_updated.to_string());
            }
            let mut entry = EntryOut {
                full_url: Some(format!(
                    "{base_url}/{}/{}",
                    outcome.resource_type, outcome.id
                )),
                ..EntryOut::default()
            };
            match (prefer, &outcome.json) {
                (Return::Representation, Some(json)) => entry.resource = Some(raw(json.clone())),
                (Return::OperationOutcome, _) => {
                    let issue = Issue::information(
                        "informational",
                        format!("{} {location}", status_line(status)),
                    );
                    response["outcome"] = operation_outcome(&[issue]);
                }
                _ => {}
            }
            entry.response = Some(response);
            entry
        }
        Action::Existing { resource_type, id } => match context.store.read(resource_type, id) {
            Ok(found) => {
                let mut entry = EntryOut {
                    full_url: Some(format!("{base_url}/{resource_type}/{id}")),
                    response: Some(json!({
                        "status": "200 OK",
                        "location": format!("{resource_type}/{id}/_history/{}", found.version),
                        "etag": etag(found.version),
                        "lastModified": found.last_updated.to_string(),
                    })),
                    ..EntryOut::default()
                };
                if prefer == Return::Representation {
                    entry.resource = Some(raw(found.json));
                }
                entry
            }
            Err(error) => failed_entry(&error.into()),
        },
        Action::NothingToDelete => EntryOut {
            response: Some(json!({"status": "204 No Content"})),
            ..EntryOut::default()
        },
        Action::Get(target) => match get(context, target) {
            Ok((full_url, json)) => EntryOut {
                full_url,
                resource: Some(raw(json)),
                response: Some(json!({"status": "200 OK"})),
                ..EntryOut::default()
            },
            Err(error) => failed_entry(&error),
        },
    }
}

/// A GET entry: read, vread or search.
fn get(context: Context<'_>, target: &Target) -> Result<(Option<String>, String), FhirError> {
    let resource_type = target.resource_type;
    match (&target.id, target.version, &target.query) {
        (Some(id), Some(version), _) => {
            let found = context.store.vread(resource_type, id, version)?;
            Ok((
                Some(format!("{}/{resource_type}/{id}", context.base_url)),
                found.json,
            ))
        }
        (Some(id), None, _) => {
            let found = context.store.read(resource_type, id)?;
            Ok((
                Some(format!("{}/{resource_type}/{id}", context.base_url)),
                found.json,
            ))
        }
        (None, _, query) => {
            let params: Vec<(String, String)> =
                url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            let search = Search::parse(resource_type, &params, context.config, false)?;
            Ok((None, search.run(context.store, context.base_url)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_rewritten_with_their_paths() {
        let mut resource = json!({
            "resourceType": "Observation",
            "subject": {"reference": "urn:uuid:1"},
            "performer": [{"reference": "urn:uuid:2"}],
        });
        let mut seen = Vec::new();
        rewrite_references(&mut resource, &mut |reference, path| {
            seen.push(path.to_owned());
            Ok((reference == "urn:uuid:1").then(|| "Patient/p".to_owned()))
        })
        .unwrap();
        assert_eq!(resource["subject"]["reference"], "Patient/p");
        assert_eq!(resource["performer"][0]["reference"], "urn:uuid:2");
        assert_eq!(seen, [".subject.reference", ".performer[0].reference"]);
    }

    #[test]
    fn ids_go_after_the_resource_type() {
        let mut object = json!({"resourceType": "Patient", "active": true});
        set_id(object.as_object_mut().unwrap(), "x");
        assert_eq!(
            object.to_string(),
            r#"{"resourceType":"Patient","id":"x","active":true}"#
        );
    }

    #[test]
    fn request_urls_are_parsed() {
        let target = parse_target("http://h/fhir", "http://h/fhir/Patient/a/_history/2").unwrap();
        assert_eq!(target.resource_type, "Patient");
        assert_eq!(target.id.as_deref(), Some("a"));
        assert_eq!(target.version, Some(2));
        let target = parse_target("http://h/fhir", "Organization?identifier=s|v").unwrap();
        assert_eq!(target.query.as_deref(), Some("identifier=s|v"));
        assert_eq!(
            parse_target("http://h/fhir", "Nope/1").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert!(parse_target("http://h/fhir", "http://other/fhir/Patient").is_err());
    }
}
