"""The providers' documented codes and messages, as the sandbox answers them (its own copy of the documents,
independent of the gateway's classification)."""

from __future__ import annotations

JUHE_SYSTEM = {
    10001: "错误的请求KEY",
    10002: "该KEY无请求权限",
    10003: "KEY过期",
    10004: "错误的OPENID",
    10005: "应用未审核超时，请提交认证",
    10007: "未知的请求源",
    10008: "被禁止的IP",
    10009: "被禁止的KEY",
    10011: "当前IP请求超过限制",
    10012: "请求超过次数限制",
    10013: "测试KEY超过请求限制",
    10014: "系统内部异常",
    10020: "接口维护",
    10021: "接口停用",
}

JUHE_SERVICE = {
    "verifyface": {226401: "数据源超时", 226402: "查无记录", 226403: "参数错误", 226404: "对比错误"},
    "four_factor": {
        280101: "任一参数不能为空",
        280102: "身份证号格式错",
        280103: "手机号格式错误",
        280104: "姓名格式错误",
        280105: "身份核验失败、手机号核验失败",
    },
    "faceid": {
        279301: "参数异常",
        279302: "查询不到认证记录",
        279303: "网络异常",
        279304: "查询失败",
        279305: "活体检测异常",
        279306: "活体检测未完成",
        279307: "客户端未提交认证或认证未完成",
    },
}

APETIME = {
    "0000": "调用成功",
    "1000": "验签失败",
    "1001": "参数非UTF-8编码",
    "1002": "请求参数错误",
    "1003": "商户冻结",
    "1004": "商户停用",
    "1005": "商户账号过期",
    "1006": "调用频率过高",
    "1007": "免费次数用尽",
    "1008": "服务无权限",
    "1009": "App_key验证失败",
    "1010": "请求过期",
    "2000": "供应商服务异常",
    "9999": "其他错误",
}

VERIFYFACE_RES_MESSAGES = {
    1: "身份证号与姓名匹配，且比对成功",
    2: "身份证核查成功，但人脸比对失败",
    3: "身份证号与姓名不匹配",
}
VERIFYFACE_FACE_CODES = {
    "3003": "人脸库中的照片检测不到人脸",
    "3004": "用户上传的照片检测不到人脸",
    "3005": "人脸比对失败",
}

CERTIFY_MESSAGES = {
    "200": "身份证号与姓名匹配，且比对成功",
    "201": "人脸库中的照片检测不到人脸",
    "202": "用户上传的照片检测不到人脸",
    "203": "人脸比对失败",
    "204": "身份证号与姓名不匹配",
    "205": "人脸对比网络超时",
    "206": "人脸对比异常",
}
# certify_res follows verifyface's res: 1 compared, 2 identity fine but no comparison, 3 name/ID mismatch.
CERTIFY_RES = {"200": "1", "203": "1", "201": "2", "202": "2", "205": "2", "206": "2", "204": "3"}


def juhe_family(api: str) -> str:
    return "verifyface" if api.startswith("verifyface") else "faceid" if api.startswith("faceid") else api


def juhe_reason(api: str, code: int) -> str:
    return JUHE_SERVICE.get(juhe_family(api), {}).get(code) or JUHE_SYSTEM.get(code) or "错误"
