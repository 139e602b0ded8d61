import pytest

from dema.models import MODELS


@pytest.fixture(params=MODELS)
def model_name(request):
    return request.param
