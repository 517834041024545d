"""An operator sizes a hosted QuantLens with environment variables (DEPLOY.md)."""

import pytest

from core.errors import QuantLensError
from core.jobs.server_settings import GIB, MIB, ServerSettings, server_settings


def test_no_variables_means_the_documented_defaults():
    assert server_settings({}) == ServerSettings()
    assert ServerSettings().job_timeout_s == 300 and ServerSettings().job_memory_bytes == 6 * GIB
    assert (ServerSettings().max_running, ServerSettings().max_queued) == (1, 4)


def test_variables_override_the_limits_in_their_documented_units():
    s = server_settings({"QUANTLENS_JOB_TIMEOUT_S": "120", "QUANTLENS_JOB_MEMORY_GB": "2.5",
                         "QUANTLENS_MAX_RUNNING": "2", "QUANTLENS_MAX_QUEUED": "0", "QUANTLENS_MAX_UPLOAD_MB": "50"})
    assert s.job_timeout_s == 120 and s.job_memory_bytes == int(2.5 * GIB)
    assert (s.max_running, s.max_queued) == (2, 0) and s.max_model_upload_bytes == 50 * MIB


@pytest.mark.parametrize("variable,value", [("QUANTLENS_JOB_TIMEOUT_S", "soon"), ("QUANTLENS_JOB_TIMEOUT_S", "0"),
                                            ("QUANTLENS_MAX_RUNNING", "1.5"), ("QUANTLENS_JOB_MEMORY_GB", "-1"),
                                            ("QUANTLENS_JOB_MEMORY_GB", "inf"), ("QUANTLENS_JOB_TIMEOUT_S", "nan")])
def test_a_bad_value_is_refused_with_the_variable_named(variable, value):
    with pytest.raises(QuantLensError) as err:
        server_settings({variable: value})
    assert err.value.code == "invalid_setting" and variable in err.value.message
