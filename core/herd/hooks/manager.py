"""Finding and loading plugins: stevedore reads the entry points, pluggy carries the hooks.

Only what a run needs is imported: a backend's plugin loads when a machine names the backend (the
entry point's name is the backend's name), and all backends load only when a run must pick the
default one. A plugin that fails to import, or that pluggy refuses (a hook that herd does not
declare, such as a misspelled name, or a parameter that its hookspec lacks), is recorded with its
name, distribution and error, is not used, and the others keep working.

The hooks that concern one machine (its start, and every hook given its handle) are routed: they go
to the plugin that registered the machine's backend, and to no other (`Plugins.backend_hooks`). So
are those of one network, to the plugin that registered its provider (`Plugins.provider_hooks`).
Network providers are plugins of the group `herd.plugins`; by convention a provider's entry point
is named after it, which lets a run load only the providers its networks use.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import pluggy
from stevedore import ExtensionManager, NamedExtensionManager

from herd.errors import PluginError
from herd.hooks import hookspecs
from herd.hooks.types import BackendInfo, NetworkProviderInfo

Named = TypeVar("Named", BackendInfo, NetworkProviderInfo)

BACKENDS_GROUP = "herd.backends"
PLUGINS_GROUP = "herd.plugins"
GROUPS = (BACKENDS_GROUP, PLUGINS_GROUP)


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be imported, or whose hooks are not herd's."""

    group: str
    name: str
    target: str  # the entry point's "module:attr"
    distribution: str
    error: str


def installed(group: str) -> list[importlib.metadata.EntryPoint]:
    """The entry points of `group`, read from metadata without importing anything."""
    return ExtensionManager(group).list_entry_points()


def distribution_of(entry_point: importlib.metadata.EntryPoint) -> str:
    """The name of the distribution that ships `entry_point`, or '?' when it cannot be told."""
    top_level = entry_point.module.split(".")[0]
    names = importlib.metadata.packages_distributions().get(top_level, [])
    return ", ".join(sorted(set(names))) or "?"


class _OnePlugin:
    """The hooks as one plugin alone implements them: `hooks.herd_machine_execute(...)` calls that
    plugin's implementation, if it has one, and no other plugin's."""

    def __init__(self, manager: pluggy.PluginManager, plugin: object) -> None:
        self._manager = manager
        self._plugin = plugin

    def __getattr__(self, name: str) -> pluggy.HookCaller:
        # Worked out at each call: plugins registered since must be left out too.
        others = [plugin for plugin in self._manager.get_plugins() if plugin is not self._plugin]
        return self._manager.subset_hook_caller(name, remove_plugins=others)


class Plugins:
    """The plugins loaded into one process, their hooks, and the backends they registered."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("herd")
        self.manager.add_hookspecs(hookspecs)
        self.backends: dict[str, BackendInfo] = {}
        self._owners: dict[str, object] = {}  # backend name: the plugin that registered it
        self.providers: dict[str, NetworkProviderInfo] = {}
        self._provider_owners: dict[str, object] = {}  # provider name: the plugin that registered it
        self.failures: list[LoadFailure] = []
        self._tried: set[tuple[str, str]] = set()
        self._registering: tuple[str, object] | None = None  # (name, plugin) while it registers

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def _register_backend(self, info: BackendInfo) -> None:
        self._register_named(info, BackendInfo, "a backend", self.backends, self._owners)

    def _register_provider(self, info: NetworkProviderInfo) -> None:
        self._register_named(
            info, NetworkProviderInfo, "a network provider", self.providers, self._provider_owners
        )

    def _register_named(
        self, info: Named, kind: type[Named], what: str, registry: dict[str, Named], owners: dict[str, object]
    ) -> None:
        """Record what the plugin being registered offers under its name (`register()` of a
        `herd_register_*` hook); two plugins may not offer the same name."""
        assert self._registering is not None, "called only by a herd_register_* hook, from register()"
        name, plugin = self._registering
        if not isinstance(info, kind):
            raise PluginError(f"plugin {name!r} registered {info!r}, which is not a {kind.__name__}")
        known = registry.get(info.name)
        if known is not None and known is not info:
            raise PluginError(f"two plugins register {what} named {info.name!r}")
        registry[info.name] = info
        owners[info.name] = plugin

    def backend_hooks(self, backend: str) -> Any:
        """The hooks of the plugin that registered `backend`, alone: a machine's start and the hooks
        given its handle go there, so that a plugin is never asked about another's machines."""
        return _OnePlugin(self.manager, self._owners[backend])

    def provider_hooks(self, provider: str) -> Any:
        """The hooks of the plugin that registered the network provider `provider`, alone: a
        network's hooks go there, so that a plugin is never asked about another's networks."""
        return _OnePlugin(self.manager, self._provider_owners[provider])

    def providers_of(self, plugin_name: str) -> list[NetworkProviderInfo]:
        """The network providers that the plugin registered as `plugin_name` provides."""
        plugin = self.manager.get_plugin(plugin_name)
        return [self.providers[n] for n, owner in sorted(self._provider_owners.items()) if owner is plugin]

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object (a module, usually) and collect the backends and network
        providers it describes.

        A plugin that implements a hook herd does not declare would load silently and never be
        called: pluggy's check_pending refuses it, as registration refuses a parameter the hookspec
        lacks. Either raises pluggy.PluginValidationError, with nothing of the plugin registered;
        a plugin that registers something other than a description, or a name another plugin
        registered, raises PluginError, with nothing of it registered either.
        """
        if self.manager.is_registered(plugin):
            return
        self._registering = (name, plugin)
        try:
            try:
                self.manager.register(plugin, name=name)
                self.manager.check_pending()
            except pluggy.PluginValidationError:
                if self.manager.is_registered(plugin):
                    self.manager.unregister(plugin)
                raise
            alone = _OnePlugin(self.manager, plugin)
            try:
                alone.herd_register_backends(register=self._register_backend)
                alone.herd_register_network_providers(register=self._register_provider)
            except PluginError:
                self._forget(plugin)
                raise
        finally:
            self._registering = None

    def _forget(self, plugin: object) -> None:
        """Unregister a plugin and what it registered."""
        for name in [name for name, owner in self._owners.items() if owner is plugin]:
            del self.backends[name], self._owners[name]
        for name in [name for name, owner in self._provider_owners.items() if owner is plugin]:
            del self.providers[name], self._provider_owners[name]
        self.manager.unregister(plugin)

    def load(self, group: str, names: Iterable[str] | None = None) -> None:
        """Import the named entry points of `group` (all of them when `names` is None)."""
        wanted = None if names is None else [n for n in names if (group, n) not in self._tried]
        if wanted == []:
            return

        def failed(
            _manager: object, entry_point: importlib.metadata.EntryPoint, error: BaseException
        ) -> None:
            self.failures.append(
                LoadFailure(
                    group,
                    entry_point.name,
                    entry_point.value,
                    distribution_of(entry_point),
                    # one line, as `herd plugins` prints it (pluggy's messages span several)
                    f"{type(error).__name__}: " + "; ".join(str(error).splitlines()),
                )
            )

        extensions: ExtensionManager[object]  # a plugin is a module, usually
        if wanted is None:
            extensions = ExtensionManager(group, on_load_failure_callback=failed)
        else:
            extensions = NamedExtensionManager(
                group, names=wanted, on_load_failure_callback=failed, on_missing_entrypoints_callback=None
            )
        for extension in extensions:
            self._tried.add((group, extension.name))
            try:
                self.register(extension.plugin, name=f"{group}:{extension.name}")
            except (pluggy.PluginValidationError, PluginError) as error:
                failed(extensions, extension.entry_point, error)
        for failure in self.failures:
            self._tried.add((failure.group, failure.name))
        if wanted is not None:
            self._tried.update((group, n) for n in wanted)

    def load_all(self) -> Plugins:
        """Import every installed backend and plugin (for what concerns them all: cleanup, doctor)."""
        for group in GROUPS:
            self.load(group)
        return self

    def backend(self, name: str) -> BackendInfo:
        """The backend called `name`, loading its plugin if needed; a clear error if there is none."""
        if name not in self.backends:
            self.load(BACKENDS_GROUP, [name])
        if name in self.backends:
            return self.backends[name]
        for failure in self.failures:
            if failure.group == BACKENDS_GROUP and failure.name == name:
                raise PluginError(
                    f"the plugin of backend {name!r} ({failure.target}, from {failure.distribution}) "
                    f"failed to load: {failure.error}"
                )
        names = sorted(ep.name for ep in installed(BACKENDS_GROUP))
        if name in names:
            raise PluginError(f"the plugin installed as backend {name!r} registered no backend of that name")
        listing = ", ".join(names) if names else "none"
        raise PluginError(
            f"no backend named {name!r} is installed (installed: {listing}); backends ship as "
            f"Python packages, by convention 'pip install herd-{name}'"
        )

    def provider(self, name: str) -> NetworkProviderInfo:
        """The network provider called `name`, loading its plugin if needed: the entry point of
        `herd.plugins` of that name first, then the whole group. A clear error if there is none."""
        if name not in self.providers:
            self.load(PLUGINS_GROUP, [name])
        if name not in self.providers:
            self.load(PLUGINS_GROUP)
        if name in self.providers:
            return self.providers[name]
        for failure in self.failures:
            if failure.group == PLUGINS_GROUP and failure.name == name:
                raise PluginError(
                    f"the plugin of network provider {name!r} ({failure.target}, from "
                    f"{failure.distribution}) failed to load: {failure.error}"
                )
        listing = ", ".join(sorted(self.providers)) or "none"
        raise PluginError(
            f"no network provider named {name!r} is installed (installed: {listing}); network providers "
            f"ship as Python packages, by convention 'pip install herd-{name}'"
        )

    def default_backend(self) -> str:
        """The installed backend with the highest priority: the one machines get when none is named."""
        self.load(BACKENDS_GROUP)
        if not self.backends:
            problems = "".join(f"; {f.name} failed to load: {f.error}" for f in self.failures)
            raise PluginError(
                "no herd backend is installed: backends ship as Python packages named herd-<backend>"
                + problems
            )
        return min(self.backends.values(), key=lambda info: (-info.priority, info.name)).name

    def backends_with(self, capability: str) -> list[str]:
        """Installed backends that declare `capability` (loads every backend plugin)."""
        self.load(BACKENDS_GROUP)
        return sorted(name for name, info in self.backends.items() if capability in info.capabilities)

    def backends_booting(self, image_kind: str) -> list[str]:
        """Installed backends whose machines boot images of `image_kind` (loads every backend plugin)."""
        self.load(BACKENDS_GROUP)
        return sorted(name for name, info in self.backends.items() if image_kind in info.images)
