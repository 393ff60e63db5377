"""Every provider code classified as the documents say.

Two independent directions: the expectations below are written from the provider documents
(/work/shared/providers/*.md), so a code missing from `idv.codes` fails; and every entry of every
table in `idv.codes` is checked against them, so an undocumented or misclassified entry fails too.
"""

from __future__ import annotations

import pytest

from idv import codes, errors

R = errors.ProviderRejected
U = errors.ProviderUnavailable
L = errors.ProviderRateLimited
OUTCOME = "outcome"
PENDING = "pending"

# (code) -> (error class or kind, auto_retry), from the documents' 系统级错误码 tables (same in all three).
DOC_JUHE_SYSTEM: dict[str, tuple[object, bool]] = {
    "10001": (R, False),  # 错误的请求KEY
    "10002": (R, False),  # 该KEY无请求权限
    "10003": (R, False),  # KEY过期
    "10004": (R, False),  # 错误的OPENID
    "10005": (R, False),  # 应用未审核超时，请提交认证
    "10007": (R, False),  # 未知的请求源
    "10008": (R, False),  # 被禁止的IP
    "10009": (R, False),  # 被禁止的KEY
    "10011": (L, True),  # 当前IP请求超过限制
    "10012": (L, True),  # 请求超过次数限制
    "10013": (R, False),  # 测试KEY超过请求限制
    "10014": (U, False),  # 系统内部异常
    "10020": (U, True),  # 接口维护
    "10021": (R, False),  # 接口停用
}

# juhe-verifyface.md 服务级错误码
DOC_JUHE_VERIFYFACE: dict[str, tuple[object, bool]] = {
    "226401": (U, False),  # 数据源超时
    "226402": (OUTCOME, False),  # 查无记录 -> identity not_found
    "226403": (R, False),  # 参数错误
    "226404": (U, False),  # 对比错误
}

# juhe-four-factor.md 服务级错误码
DOC_JUHE_FOUR_FACTOR: dict[str, tuple[object, bool]] = {
    "280101": (R, False),  # 任一参数不能为空
    "280102": (errors.InvalidIdNumber, False),  # 身份证号格式错
    "280103": (errors.InvalidMobile, False),  # 手机号格式错误
    "280104": (errors.InvalidName, False),  # 姓名格式错误
    "280105": (OUTCOME, False),  # 身份核验失败、手机号核验失败
}

# juhe-faceid.md 服务级错误码
DOC_JUHE_FACEID: dict[str, tuple[object, bool]] = {
    "279301": (R, False),  # 参数异常
    "279302": (errors.NotFound, False),  # 查询不到认证记录
    "279303": (U, False),  # 网络异常
    "279304": (U, False),  # 查询失败
    "279305": (OUTCOME, False),  # 活体检测异常
    "279306": (PENDING, False),  # 活体检测未完成
    "279307": (PENDING, False),  # 客户端未提交认证或认证未完成
}

# apetime-portrait.md 响应码
DOC_APETIME: dict[str, tuple[object, bool]] = {
    "0000": (OUTCOME, False),  # 调用成功
    "1000": (R, False),  # 验签失败
    "1001": (R, False),  # 参数非 UTF-8 编码
    "1002": (R, False),  # 请求参数错误
    "1003": (R, False),  # 商户冻结
    "1004": (R, False),  # 商户停用
    "1005": (R, False),  # 商户账号过期
    "1006": (L, True),  # 调用频率过高
    "1007": (R, False),  # 免费次数用尽
    "1008": (R, False),  # 服务无权限
    "1009": (R, False),  # App_key 验证失败
    "1010": (R, False),  # 请求过期
    "2000": (U, False),  # 供应商服务异常
    "9999": (U, False),  # 其他错误
}

DOC_SERVICE = {"verifyface": DOC_JUHE_VERIFYFACE, "four_factor": DOC_JUHE_FOUR_FACTOR, "faceid": DOC_JUHE_FACEID}

TABLES = {
    "JUHE_SYSTEM": (codes.JUHE_SYSTEM, DOC_JUHE_SYSTEM),
    "JUHE_VERIFYFACE": (codes.JUHE_VERIFYFACE, DOC_JUHE_VERIFYFACE),
    "JUHE_FOUR_FACTOR": (codes.JUHE_FOUR_FACTOR, DOC_JUHE_FOUR_FACTOR),
    "JUHE_FACEID": (codes.JUHE_FACEID, DOC_JUHE_FACEID),
    "APETIME": (codes.APETIME, DOC_APETIME),
}


def _assert_classified(info: codes.CodeInfo, expected: tuple[object, bool]) -> None:
    what, retry = expected
    if what in (OUTCOME, PENDING):
        assert info.kind == what
        assert info.error is None
        assert info.problem_code is None
        assert info.http_status == 200
    else:
        assert info.kind == "error"
        assert info.error is what
        assert isinstance(what, type)
        assert info.problem_code == what.code
        assert info.http_status == what.status
    assert info.auto_retry is retry


# --- direction 1: the documents' lists against the code --------------------------------------------


@pytest.mark.parametrize("table_name", sorted(TABLES))
def test_table_has_exactly_the_documented_codes(table_name: str) -> None:
    table, documented = TABLES[table_name]
    assert set(table) == set(documented)


@pytest.mark.parametrize("api", sorted(DOC_SERVICE))
@pytest.mark.parametrize(("code", "expected"), sorted(DOC_JUHE_SYSTEM.items()))
def test_documented_system_code_for_every_juhe_api(api: str, code: str, expected: tuple[object, bool]) -> None:
    _assert_classified(codes.juhe_code(api, code), expected)
    _assert_classified(codes.juhe_code(api, int(code)), expected)  # error_code arrives as an int


@pytest.mark.parametrize(
    ("api", "code", "expected"),
    [(api, code, exp) for api, table in sorted(DOC_SERVICE.items()) for code, exp in sorted(table.items())],
)
def test_documented_service_code(api: str, code: str, expected: tuple[object, bool]) -> None:
    _assert_classified(codes.juhe_code(api, code), expected)
    _assert_classified(codes.juhe_code(api, int(code)), expected)


@pytest.mark.parametrize(("code", "expected"), sorted(DOC_APETIME.items()))
def test_documented_apetime_code(code: str, expected: tuple[object, bool]) -> None:
    _assert_classified(codes.apetime_code(code), expected)


def test_service_codes_do_not_leak_between_juhe_apis() -> None:
    # 280102 is a four-factor code; on verifyface it is undocumented, so plain unavailability.
    info = codes.juhe_code("verifyface", 280102)
    assert info.error is U and info.meaning == "undocumented error code"


@pytest.mark.parametrize("code", ["10006", "10010", "226499", "999999", "-1"])
def test_unknown_juhe_code_is_unavailable_not_retried(code: str) -> None:
    info = codes.juhe_code("verifyface", code)
    assert (info.kind, info.error, info.auto_retry) == ("error", U, False)


@pytest.mark.parametrize("code", ["0001", "1011", "3000", ""])
def test_unknown_apetime_code_is_unavailable_not_retried(code: str) -> None:
    info = codes.apetime_code(code)
    assert (info.kind, info.error, info.auto_retry) == ("error", U, False)


# --- direction 2: every table entry of idv.codes against the documents --------------------------------

ALL_ENTRIES = [(name, key, info) for name, (table, _) in sorted(TABLES.items()) for key, info in table.items()]


@pytest.mark.parametrize(("table_name", "key", "info"), ALL_ENTRIES, ids=[f"{n}-{k}" for n, k, _ in ALL_ENTRIES])
def test_every_table_entry_is_documented_and_consistent(table_name: str, key: str, info: codes.CodeInfo) -> None:
    _, documented = TABLES[table_name]
    assert key == info.code
    assert key in documented, f"{table_name} has {key}, which no provider document lists"
    _assert_classified(info, documented[key])
    # Only rate-limit / maintenance errors may be retried automatically, and never an outcome.
    if info.auto_retry:
        assert info.error in (L, U)
    if info.kind == "error":
        assert issubclass(info.error, errors.IdvError)  # type: ignore[arg-type]
    service_api = {"JUHE_VERIFYFACE": "verifyface", "JUHE_FOUR_FACTOR": "four_factor", "JUHE_FACEID": "faceid"}
    if table_name in service_api:
        api = service_api[table_name]
        assert codes.JUHE_SERVICE_TABLES[api] is TABLES[table_name][0]
        assert codes.juhe_code(api, key) is info
    if table_name == "JUHE_SYSTEM":
        for api in codes.JUHE_SERVICE_TABLES:
            assert codes.juhe_code(api, key) is info
    if table_name == "APETIME":
        assert codes.apetime_code(key) is info


def test_auto_retry_codes_are_exactly_the_agreed_ones() -> None:
    retried = {(name, key) for name, (table, _) in TABLES.items() for key, info in table.items() if info.auto_retry}
    assert retried == {
        ("JUHE_SYSTEM", "10011"),
        ("JUHE_SYSTEM", "10012"),
        ("JUHE_SYSTEM", "10020"),
        ("APETIME", "1006"),
    }


# --- the result mapping tables ----------------------------------------------------------------------

# juhe-four-factor.md `res`: 不通过 = mismatch, 失败 = unverified, 查询无记录 = no_record; a part the
# sentence does not mention was not checked (unverified). Decision: 100 pass, 108/109 review, else fail.
DOC_FOUR_FACTOR_RES: dict[int, tuple[str, str, str, str]] = {
    100: ("match", "match", "match", "pass"),  # 身份、人像核验通过，手机号核验通过
    101: ("match", "match", "mismatch", "fail"),  # 身份、人像核验通过，手机号核验不通过
    102: ("match", "mismatch", "match", "fail"),  # 身份、手机核验通过，人像核验不通过
    103: ("match", "mismatch", "mismatch", "fail"),  # 身份核验通过，手机、人像核验不通过
    104: ("match", "unverified", "match", "fail"),  # 身份、手机号核验成功，人像核验失败
    105: ("mismatch", "unverified", "match", "fail"),  # 身份核验不通过，手机号核验通过
    106: ("match", "unverified", "mismatch", "fail"),  # 身份核验成功，手机号核验不通过，人像核验失败
    107: ("mismatch", "unverified", "mismatch", "fail"),  # 身份核验不通过、手机号核验不通过
    108: ("match", "match", "unverified", "review"),  # 身份、人像核验通过，手机号核验失败
    109: ("match", "match", "no_record", "review"),  # 身份、人像核验通过，手机号查询无记录
    110: ("match", "mismatch", "unverified", "fail"),  # 身份核验通过，人像核验不通过，手机号核验失败
    111: ("match", "mismatch", "no_record", "fail"),  # 身份核验通过，人像核验不通过，手机号查询无记录
    112: ("match", "unverified", "unverified", "fail"),  # 身份核验成功，手机号、人像核验失败
    113: ("match", "unverified", "no_record", "fail"),  # 身份核验成功，手机号查询无记录，人像核验失败
    114: ("mismatch", "unverified", "unverified", "fail"),  # 身份核验不通过、手机号核验失败
    115: ("unverified", "unverified", "match", "fail"),  # 手机号核验通过，身份核验失败
    116: ("unverified", "unverified", "mismatch", "fail"),  # 手机号核验不通过，身份核验失败
}


def test_four_factor_res_table_covers_100_to_116() -> None:
    assert set(codes.FOUR_FACTOR_RES) == set(range(100, 117)) == set(DOC_FOUR_FACTOR_RES)


@pytest.mark.parametrize(("res", "expected"), sorted(DOC_FOUR_FACTOR_RES.items()))
def test_four_factor_res_mapping(res: int, expected: tuple[str, str, str, str]) -> None:
    assert codes.FOUR_FACTOR_RES[res] == expected[:3]


DOC_VERIFYFACE_FACE = {"3003": "no_face_reference", "3004": "no_face_selfie", "3005": "unverified"}
DOC_FACEID_CERTIFY = {
    "200": ("match", "match"),  # 身份证号与姓名匹配，且比对成功
    "201": ("match", "no_face_reference"),  # 人脸库中的照片检测不到人脸
    "202": ("match", "no_face_selfie"),  # 用户上传的照片检测不到人脸
    "203": ("match", "mismatch"),  # 人脸比对失败
    "204": ("mismatch", "unverified"),  # 身份证号与姓名不匹配
    "205": ("unverified", "unverified"),  # 人脸对比网络超时
    "206": ("unverified", "unverified"),  # 人脸对比异常
}
DOC_FACEID_LIVE = {
    "200": None,  # 活体检测通过
    "201": "liveness_risk",  # 活体检测存在风险
    "202": "liveness_policy_blocked",  # 业务策略限制
    "203": "liveness_low_quality",  # 活体照片质量较低
    "204": "liveness_source_error",  # 权威比对源异常
    "205": "liveness_intent_failed",  # 意愿判定不通过
}
DOC_APETIME_PHOTO = {1: "match", 2: "no_reference_photo", 3: "no_face_selfie"}  # 比对成功 / 库中无照片 / 特征提取失败

MAPPINGS = {
    "VERIFYFACE_FACE_CODES": (codes.VERIFYFACE_FACE_CODES, DOC_VERIFYFACE_FACE),
    "FACEID_CERTIFY": (codes.FACEID_CERTIFY, DOC_FACEID_CERTIFY),
    "FACEID_LIVENESS_REASONS": (codes.FACEID_LIVENESS_REASONS, DOC_FACEID_LIVE),
    "APETIME_PHOTO": (codes.APETIME_PHOTO, DOC_APETIME_PHOTO),
}
MAPPING_ENTRIES = [(name, k) for name, (table, doc) in sorted(MAPPINGS.items()) for k in {*table, *doc}]


@pytest.mark.parametrize(("name", "key"), MAPPING_ENTRIES, ids=[f"{n}-{k}" for n, k in MAPPING_ENTRIES])
def test_result_mapping_entry(name: str, key: object) -> None:
    table, documented = MAPPINGS[name]
    assert key in table, f"{name} lacks documented {key!r}"
    assert key in documented, f"{name} has undocumented {key!r}"
    assert table[key] == documented[key]  # type: ignore[index]
