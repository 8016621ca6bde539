"""The server's folders stay on the server: a model version's record names its dataset as an
absolute path ("test split of /srv/portal/datasets/covid-2026 (folders)"), which tells a clinician
or an integrator how the server is laid out and nothing about the model. Those readers get the
folder's name; the administrators who manage models (and choose those folders) see it whole."""
import re

# A path that starts the text or follows a space or bracket: "https://a/b", "2026/01/02" and
# "sensitivity/specificity" do not.
ABSOLUTE_PATH = re.compile(r"(?<![^\s(\[\"'])/(?:[^\s/\"'()\[\]]+/)*([^\s/\"'()\[\]]+)/?")


def may_see_server_paths(context):
    request = context.get("request")
    return request is not None and request.user.has_perm("ml.manage_models")


def folder_names_only(value):
    """`value` (JSON-like data) with every absolute path replaced by its last part."""
    if isinstance(value, str):
        return ABSOLUTE_PATH.sub(r"\1", value)
    if isinstance(value, dict):
        return {key: folder_names_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [folder_names_only(item) for item in value]
    return value
