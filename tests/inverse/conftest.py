"""Fixtures of the inverse-graphics tests; the datasets they use are made by :mod:`inverse_helpers`."""

import pytest
from inverse_helpers import write_multiview_dataset


@pytest.fixture(scope="session")
def multiview_dataset(tmp_path_factory):
    """3 contents x 4 views at 32 px, exact cameras in meta and in the manifest."""
    folder = tmp_path_factory.mktemp("multiview")
    write_multiview_dataset(folder)
    return folder
