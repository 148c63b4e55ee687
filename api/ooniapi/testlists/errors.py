"""The editor's errors, with the ``err_str`` codes test-lists.ooni.org
reads (api.md §10). All are ``ooniapi.core.errors`` classes, mapped to HTTP
in ``ooniapi.core.app``."""
from __future__ import annotations

from ooniapi.core.errors import ApiError, OoniError


class Unavailable(ApiError):
    """GitHub or the git remotes cannot be reached or refused the backend:
    nothing the user can fix, and no local state was lost (retry later)."""
    status = 503


def bad_url(url: str) -> OoniError:
    return OoniError("err_bad_url", "Invalid URL", err_args={"url": url})


def bad_category_code(code: str) -> OoniError:
    return OoniError("err_bad_category_code", "Invalid category code",
                     err_args={"category_code": code})


def bad_date(value: str) -> OoniError:
    return OoniError("err_bad_date", "Invalid date", err_args={"date_added": value})


def bad_params(message: str) -> OoniError:
    return OoniError("err_request_params", message)


def invalid_country_code() -> OoniError:
    return OoniError("err_invalid_country_code", "Country code is invalid")


def country_not_supported(cc: str) -> OoniError:
    return OoniError("err_country_not_supported",
                     f"There is no test list for {cc!r}", err_args={"country_code": cc})


def duplicate_url(url: str) -> OoniError:
    return OoniError("err_duplicate_url", f"{url} is duplicate", err_args={"url": url})


def cannot_update_list() -> OoniError:
    return OoniError("err_cannot_update_list",
                     "Unable to update. The URL list has changed in the meantime.")


def no_proposed_changes(message: str = "No changes are being proposed") -> OoniError:
    return OoniError("err_no_proposed_changes", message)


def cannot_close_pr() -> OoniError:
    return OoniError("err_cannot_close_pr", "Unable to close PR. Please reload data.")


def pr_already_open(pr_url: str | None) -> OoniError:
    return OoniError("err_pr_already_open",
                     "A pull request with your changes is already open; edit the list "
                     "to replace it", status=409, err_args={"pr_url": pr_url or ""})


def account_busy() -> OoniError:
    return OoniError("err_account_busy",
                     "Another request of this account is still running; retry", status=409)
