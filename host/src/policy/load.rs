//! Loading the policy a config asks for: its plugin, checked and configured against a backend
//! set, behind the built-in round-robin; or the built-in alone when there is no plugin.

use super::{Policy, Shadow};
use crate::backend::BackendSet;
use crate::clock::Clock;
use crate::config::PolicyConfig;
use crate::plugin::{PluginBalancer, PluginEngine, PluginError};

impl Policy {
    /// Loads the plugin `config` names against `set` in `engine` (made here, with the config's
    /// cache, if `None`), or the built-in round-robin if there is no `[policy]`. Blocking: it may
    /// compile, so keep it off the request path.
    pub fn load(
        engine: Option<&PluginEngine>,
        config: Option<&PolicyConfig>,
        set: &BackendSet,
        clock: &Clock,
    ) -> Result<Policy, PluginError> {
        let Some(config) = config else {
            return Ok(Policy::builtin(clock));
        };
        let made;
        let engine = match engine {
            Some(engine) => engine,
            None => {
                made = PluginEngine::with_cache_folder(config.cache.as_deref())?;
                &made
            }
        };
        let plugin = PluginBalancer::load(
            engine,
            &config.plugin,
            &config.config,
            config.limits,
            set,
            clock,
        )?;
        let policy = Policy::with_plugin(plugin.info(), Box::new(plugin), config.breaker, clock);
        let Some(shadow) = &config.shadow else {
            return Ok(policy);
        };
        let started = PluginBalancer::load(
            engine,
            &shadow.plugin,
            &shadow.config,
            config.limits,
            set,
            clock,
        )
        .map_err(|err| err.to_string())
        .and_then(|candidate| {
            Shadow::start(candidate, shadow, config.breaker, clock)
                .map_err(|err| format!("cannot start the shadow's thread: {err}"))
        });
        match started {
            Ok(started) => Ok(policy.with_shadow(started)),
            Err(reason) => {
                // Traffic never depends on the shadow: vane serves without it, and says so.
                tracing::error!(
                    shadow = %shadow.plugin.display(),
                    %reason,
                    "the shadow policy could not be loaded; serving without it"
                );
                Ok(policy.with_shadow_failure(shadow.plugin.clone(), reason))
            }
        }
    }
}
