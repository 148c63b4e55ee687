"""What rotation needs from a cloud provider: VMs and DNS records. Digital
Ocean implements it (``digitalocean.py``); another provider adds a module
with the same methods."""
from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass


class ProviderError(Exception):
    """A provider call failed (HTTP error, timeout, unexpected answer).
    ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NotFound(ProviderError):
    pass


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    status: str              # provider's word; "active" when running
    region: str
    ipv4: str | None
    ipv6: str | None
    created_at: dt.datetime | None
    tags: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.status == "active" and bool(self.ipv4)


@dataclass(frozen=True)
class DnsRecord:
    id: str
    type: str
    name: str   # relative to the zone ("3" for 3.th.example.org)
    data: str
    ttl: int


class Provider(ABC):
    name: str   # as stored in test_helper_instances.provider

    @abstractmethod
    def list_instances(self, tag: str) -> list[Instance]: ...

    @abstractmethod
    def available_regions(self) -> list[str]: ...

    @abstractmethod
    def ssh_key_ids(self) -> list[str]: ...

    @abstractmethod
    def create_instance(self, name: str, region: str, size: str, image: str,
                        user_data: str, tag: str, ssh_keys: list[str]) -> Instance: ...

    @abstractmethod
    def get_instance(self, instance_id: str) -> Instance: ...

    @abstractmethod
    def delete_instance(self, instance_id: str) -> None:
        """Raises NotFound when it is already gone."""

    @abstractmethod
    def list_records(self, zone: str) -> list[DnsRecord]: ...

    @abstractmethod
    def create_record(self, zone: str, rtype: str, name: str, data: str, ttl: int) -> DnsRecord: ...

    @abstractmethod
    def delete_record(self, zone: str, record_id: str) -> None:
        """Raises NotFound when it is already gone."""
