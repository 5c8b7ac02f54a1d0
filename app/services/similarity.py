"""Similar opinions (issue 19): does this form report the same issue as that one?

"The same issue" means the same problem at the same place: thirty residents reporting one flooded road in
their own words are one issue; the same flooding two groups further on is another, and so is a broken lamp
on that road. A pair of forms is scored in [0, 1] from three things precomputed per form (``Features``):

- wording: the character bigrams and the characters of the problem text (places and filler words taken
  out), compared as sets (cosine). Before that the text is normalised: NFKC (full-width letters and digits), lower case, a short
  traditional-to-simplified table, common dialect words to Mandarin (落雨 → 下雨, 莫得 → 没有), and every
  character of GB2312's first level folded to one character per toneless pinyin syllable, so that the
  homophone slips of a pinyin keyboard (路等 for 路灯, 积睡 for 积水) still share bigrams.
- topics: a thesaurus of the problems a town hears (lighting, flooding, rubbish, noise, parking, water
  supply, roads, ...), so that 黑咕隆咚 and 路灯不亮 meet although they share no character.
- places: named by generic patterns only, never by a list of names: numbers before 组/队/号楼/栋/单元/车间
  (三组 = 3组 = 第三村民小组), a name of one to three characters before a place word (村 社区 小区 路 街 巷
  桥 河 市场 学校 厂 院 ...), a direction before 门 or 头 (东门, 村西头). Two forms naming different places
  of one kind (三组 / 四组) are held apart; naming the same one brings them together.

``score`` = problem similarity (a mix of wording and topics) × a place factor; ``same_issue`` compares it
with ``Rule.threshold``. The rule's fields are settings (``MINYI_SIMILAR_<FIELD>``). Measured quality,
the data it was measured on and the known weaknesses: docs/similarity.md.

Pure Python, no database, no network, no model: candidates come from the database through ``terms`` (any
pair this module calls the same issue shares at least one term), and this module reranks them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

MAX_ANALYSED = 2000  # characters of content read; an opinion's problem and place are stated well before


@dataclass(frozen=True)
class Rule:
    """The decision rule. Each field is the setting ``MINYI_SIMILAR_<FIELD>``."""

    threshold: float = 0.4  # a pair scoring at least this is the same issue
    topic_weight: float = 0.7  # share of the problem similarity given by shared topics (the rest: shared wording)
    wording_full: float = 0.5  # wording similarity (cosine of bigrams and characters) that counts as fully alike
    place_conflict: float = 0.3  # factor when both forms name different places of one kind (三组 / 四组)
    place_unshared: float = 0.75  # factor when both name places, but of no common kind (菜市场 / 幸福路)
    place_unknown: float = 0.9  # factor when one or both name no place at all


@dataclass(frozen=True)
class Features:
    """What is kept per form to score it against others: small, cheap, rebuilt from content and location."""

    grams: frozenset[str]  # folded character bigrams and ASCII words of the problem text
    chars: frozenset[str]  # its folded characters
    topics: frozenset[str]  # thesaurus topics the content names
    places: tuple[tuple[str, str], ...]  # (kind, name) of each place named, sorted; numbered names start "#"


# --- normalising --------------------------------------------------------------------------------------

# Traditional characters that residents' phones send most in such forms, and their simplified forms.
# Not a full conversion: a character missing here stays as it is (and then only matches itself).
_TRADITIONAL = (
    "燈灯積积處处題题問问請请鄉乡鎮镇區区號号樓楼門门學学車车場场電电網网絡络聲声擾扰點点麼么們们這这個个來来"
    "時时開开關关壞坏還还沒没過过進进線线發发現现長长東东兩两為为務务醫医療疗報报銷销費费險险環环衛卫運运裡里"
    "裏里邊边燒烧攤摊販贩陽阳臺台辦办幫帮議议廠厂間间熱热飯饭農农溝沟橋桥護护欄栏損损塊块當当聽听說说讓让給给"
    "對对從从會会應应該该後后頭头亂乱佔占礙碍擋挡滿满氣气髒脏淨净潔洁掃扫資资訊讯碼码寬宽帶带蓋盖紅红綠绿馬马"
    "減减讀读條条縣县經经濟济養养鐵铁際际僅仅導导嚴严難难麵面雜杂聞闻異异蟲虫雞鸡魚鱼豬猪糞粪髮发傷伤歲岁錢钱"
    "幾几錯错鬧闹響响覺觉廣广總总組组隊队壓压澇涝機机樹树廁厕業业員员鄰邻莊庄灣湾園园藥药驗验龍龙廳厅層层"
    "棟栋單单週周爛烂壩坝漲涨濁浊黃黄風风補补貼贴幹干嗎吗貴贵賣卖買买輛辆師师"
)
_TRADITIONAL_TABLE = {ord(t): s for t, s in zip(_TRADITIONAL[::2], _TRADITIONAL[1::2], strict=True)}

# Dialect and colloquial words, to the Mandarin a form in standard Chinese would use. Longest first.
_DIALECT = {
    "落大雨": "下大雨", "落雨": "下雨", "冇得": "没有", "莫得": "没有", "没得": "没有", "么得": "没有", "木有": "没有",
    "冇": "没", "啥子": "什么", "么子": "什么", "乜嘢": "什么", "啥": "什么", "咋个": "怎么", "咋子": "怎么",
    "怎个": "怎么", "咋": "怎么", "点解": "为什么", "晓得": "知道", "屋里头": "家里", "屋头": "家里", "屋里": "家里",
    "晚黑": "晚上", "夜里头": "晚上", "夜头": "晚上", "黑黢黢": "很黑", "黢黑": "很黑", "黑麻麻": "很黑",
    "黑咕隆咚": "很黑", "黑漆漆": "很黑", "黑乎乎": "很黑", "乌漆嘛黑": "很黑", "一片漆黑": "很黑", "娃儿": "孩子",
    "娃娃": "孩子", "伢子": "孩子", "细伢": "孩子", "一哈儿": "一下", "一哈": "一下", "遭不住": "受不了", "遭": "被",
    "恼火": "困难", "赶场": "赶集", "脑壳": "头", "俺们": "我们", "俺": "我", "咱们": "我们", "阿拉": "我们",
    "侬": "你", "勿": "不", "唔": "不", "嘅": "的", "佢": "他", "睇": "看", "嗰": "那", "啲": "些",
    "坏球了": "坏了", "坏起": "坏了", "满起": "满了", "堵起": "堵了", "淹起": "淹了", "垮了": "塌了", "稀巴烂": "很烂",
    "稀烂": "很烂", "搞快": "赶快",
}
_DIALECT_PATTERN = re.compile("|".join(sorted(map(re.escape, _DIALECT), key=len, reverse=True)))

# GB2312's first level (3,755 characters) is ordered by pinyin: these are the lengths of its runs of one
# toneless syllable (a, ai, an, ...), worked out once with pypinyin. Every character of a run folds to the
# run's first, so homophones (灯 等 登) become one character. Characters outside the first level stay.
_GB2312_RUNS = (
    "2,13,9,3,9,18,8,15,12,17,15,4,6,24,12,4,4,6,9,19,11,1,11,7,5,5,5,2,11,3,10,13,9,6,10,15,16,5,12,16,1,7,"
    "6,5,7,2,12,6,1,4,3,8,3,6,6,12,15,5,12,3,7,19,16,9,7,9,1,10,8,14,6,4,9,12,13,1,8,8,17,11,12,15,15,1,1,45,"
    "2,6,11,9,10,17,1,2,7,15,9,18,6,3,11,3,16,3,6,1,7,19,3,9,18,2,4,5,9,7,18,9,5,14,14,21,6,10,53,17,40,13,"
    "28,27,20,25,2,17,25,7,10,11,4,5,6,7,4,15,4,2,4,4,7,5,4,2,8,11,4,4,7,3,15,7,9,2,11,3,34,1,14,11,13,5,12,"
    "14,11,9,6,20,14,6,2,7,12,9,6,9,6,12,1,16,3,8,14,9,8,2,6,6,1,17,3,15,7,5,3,1,5,1,2,1,1,11,7,2,2,7,1,6,4,"
    "4,3,1,1,2,4,1,7,6,6,8,5,7,9,2,14,17,4,4,2,5,9,9,15,36,3,22,8,15,5,11,13,2,8,13,11,8,2,4,5,3,2,10,2,1,10,"
    "3,10,2,3,2,2,3,4,4,3,4,3,1,1,9,2,16,8,11,12,16,11,47,10,33,2,4,2,3,4,4,4,16,8,4,12,3,11,3,8,9,9,18,13,"
    "11,1,4,15,8,5,3,10,13,4,11,2,6,3,11,7,2,17,10,33,10,3,9,29,35,13,26,20,18,21,10,15,7,9,19,10,6,14,16,33,"
    "17,15,15,53,16,18,1,15,20,45,20,10,12,3,7,4,3,14,4,1,1,4,14,6,17,15,10,10,16,15,43,11,14,26,2,1,6,7,6,2,"
    "11,15,7,4,8,2,4,2,8"
)


@cache
def _fold_table() -> dict[int, str]:
    level1 = bytes(b for hi in range(0xB0, 0xD8) for lo in range(0xA1, 0xFF) for b in (hi, lo))
    chars = level1.decode("gb2312", errors="ignore")  # the five unassigned codes at the end drop out
    table: dict[int, str] = {}
    start = 0
    for length in map(int, _GB2312_RUNS.split(",")):
        head = chars[start]
        table.update((ord(c), head) for c in chars[start:start + length] if c != head)
        start += length
    assert start == len(chars) == 3755
    return table


def _normalise(text: str) -> str:
    """NFKC, lower case, simplified, Mandarin: the text places and topics are read from (not yet folded)."""
    text = text[:MAX_ANALYSED]
    if not unicodedata.is_normalized("NFKC", text):  # the check is much cheaper than the normalising
        text = unicodedata.normalize("NFKC", text)
    text = text.lower().translate(_TRADITIONAL_TABLE)
    return _DIALECT_PATTERN.sub(lambda m: _DIALECT[m.group()], text)


def _fold(text: str) -> str:
    return text.translate(_fold_table())


def _is_cjk(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf"


# --- places -------------------------------------------------------------------------------------------

_NUM = "[0-9]+|[零〇一二两三四五六七八九十]+"
_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}

# Numbered places, stored with their unit (三组 = 3组 = 第三村民小组 = 三队 -> "#3组"), and a direction before
# a gate or an end of the village (东门 / 西门, 村东头 / 村西头), stored as the direction: (kind, pattern).
_MARKS = [
    ("组", rf"第?(?:{_NUM})(?:村民小组|村民组|小组|组|生产队|队)"),
    ("楼", rf"(?:{_NUM})(?:号楼|栋|幢|号院)"),
    ("单元", rf"(?:{_NUM})单元"),
    ("车间", rf"第?(?:{_NUM})车间"),
    ("线路", rf"(?:{_NUM})路(?=车|公交|汽车|班车)|公交(?:{_NUM})路"),  # a bus route
    ("小学", rf"第?(?:{_NUM})小学|(?:{_NUM})小(?=[东南西北门校口旁的,.!?;:\s]|$)"),  # 第二小学 = 二小
    ("中学", rf"第?(?:{_NUM})中学|(?:{_NUM})中(?=[东南西北门校口旁的,.!?;:\s]|$)"),
    ("门", "[东南西北]门"),
    ("方位", "村[东南西北]|[东南西北](?:头|边|片)"),
]
# The lookahead lets the engine skip, at one test a character, the places where no mark can start.
_MARK_PATTERN = re.compile("(?=[第0-9零〇一二两三四五六七八九十公东南西北村])(?:"
                           + "|".join(f"(?P<m{i}>{pattern})" for i, (_kind, pattern) in enumerate(_MARKS)) + ")")
_NUMBER_PATTERN = re.compile(_NUM)
_DIRECTION_PATTERN = re.compile("[东南西北]")

# Place words a name stands before: word -> (kind, the word as stored, whether the word alone names a
# place: 卫生院 is the town's one; 路 alone is any road).
_PLACE_WORDS: dict[str, tuple[str, str, bool]] = {
    **dict.fromkeys(["村", "庄", "屯", "寨", "湾"], ("村", "", False)),
    **dict.fromkeys(["社区", "居委会"], ("社区", "", False)),
    **dict.fromkeys(["小区", "花园", "家园", "公寓", "苑"], ("小区", "", False)),
    **dict.fromkeys(["镇", "乡"], ("镇", "", False)),
    **dict.fromkeys(["路", "大道", "大街", "街", "巷"], ("路", "", False)),
    "桥": ("桥", "", False),
    **dict.fromkeys(["河", "江", "湖", "水库"], ("河", "", False)),
    "市场": ("市场", "", False),
    **dict.fromkeys(["菜市场", "农贸市场", "集市", "菜场", "超市", "商场"], ("市场", "", True)),
    "小学": ("小学", "", False), "中心校": ("小学", "中心小学", True), "中学": ("中学", "", False),
    "学校": ("学校", "", False), "幼儿园": ("幼儿园", "", True),
    "医院": ("医院", "", False),
    **dict.fromkeys(["卫生院", "卫生室", "中医院", "人民医院", "敬老院", "养老院"], ("医院", "", True)),
    **dict.fromkeys(["厂", "公司", "工业园"], ("厂", "", False)),
    **dict.fromkeys(["公园", "广场"], ("广场", "", False)),
    **dict.fromkeys(["公交站", "汽车站", "客运站", "火车站", "加油站", "码头", "渡口"], ("站", "", True)),
    **dict.fromkeys(["村委会", "村部", "派出所", "邮局", "银行", "图书馆", "文化站", "体育馆", "祠堂", "养殖场",
                     "农场", "果园", "酒店", "饭店", "宾馆"], ("地标", "", True)),
}
# After these, the place word is the start of another word (路灯, 河道, 村民, 厂家, 市场监管), not a place.
_NOT_AFTER = {"路": "灯面况基牌费线", "河": "道面堤岸床", "桥": "梁面", "村": "民委干长支级集务规子",
              "厂": "家长", "市场": "监价", "镇": "上里政长", "街": "道坊"}
_PLACE_PATTERN = re.compile("|".join(sorted(map(re.escape, _PLACE_WORDS), key=len, reverse=True)))
# Characters a name does not contain: walking back from a place word, the name stops at one of them.
_NOT_IN_NAME = set(
    "的了在是我你他她它们这那哪个些和与及或到从向往给把被让就都也还又很太最更再已才只没不有无要会能可说着过"
    "呢吗吧啊呀嘛哦哈嘞咯噻撒啦每各本该此其全整同隔邻附近旁边里内外前后段条座处户多少走修骑开进出堵挡占烂"
    "坏破等叫去来回经沿靠对朝离跟于由为以跑拉送接停倒扔丢满淹住口上下望议映烦谢请"
)
# Names that are no names: what is left is a kind of place, not one place.
_GENERIC = set("农村 乡村 马路 公路 道路 村路 小路 大路 土路 山路 水泥路 铁路 网路 小河 大河 工厂 车站 小巷 大桥 小桥"
               " 石桥 菜市 集市 成河 夜路 河".split())
_MAX_NAME = 3


def _number(text: str) -> str:
    if text.isdigit():
        return str(int(text))
    if all(c in _DIGITS for c in text):  # 一〇八
        return "".join(str(_DIGITS[c]) for c in text)
    tens, _, units = text.partition("十")
    if "十" in text and len(units) <= 1 and len(tens) <= 1:  # 十, 十二, 二十, 二十三
        return str((_DIGITS.get(tens, 1) if tens else 1) * 10 + (_DIGITS.get(units, 0) if units else 0))
    return text


def _places(text: str) -> tuple[list[tuple[str, str]], list[tuple[int, int]]]:
    """The places ``text`` (normalised) names, as (kind, name), and the spans they take."""
    found: list[tuple[int, int, str, str]] = []  # start, end, kind, name
    taken = bytearray(len(text))
    for m in _MARK_PATTERN.finditer(text):
        kind = _MARKS[int(m.lastgroup[1:])][0]
        if kind in ("门", "方位"):
            name = _DIRECTION_PATTERN.search(m.group())[0]
        else:
            name = f"#{_number(_NUMBER_PATTERN.search(m.group())[0])}{kind}"
        found.append((m.start(), m.end(), kind, name))
        taken[m.start():m.end()] = b"\x01" * (m.end() - m.start())
    named: list[tuple[int, int, str, str]] = []
    for m in _PLACE_PATTERN.finditer(text):
        start, end, word = m.start(), m.end(), m.group()
        following = text[end:end + 1]
        if any(taken[start:end]) or following and following in _NOT_AFTER.get(word, ""):
            continue
        kind, stored, alone = _PLACE_WORDS[word]
        if named and named[-1][1] == start:  # 大王庄村, 西街菜市场: the name is the place just before, whole
            name = named[-1][3]
        else:
            begin = start
            while (begin > 0 and start - begin < _MAX_NAME and not taken[begin - 1] and _is_cjk(text[begin - 1])
                   and text[begin - 1] not in _NOT_IN_NAME):
                begin -= 1
            name, start = text[begin:start], begin
        full = name + (stored or word)
        if (not name and not alone) or full in _GENERIC:
            continue
        named.append((start, end, kind, full))
        taken[start:end] = b"\x01" * (end - start)
    found.extend(named)
    return [(kind, name) for _s, _e, kind, name in found], [(s, e) for s, e, _k, _n in found]


def _same_place(a: str, b: str) -> bool:
    """Two names of one kind name the same place: equal, or one is the other with more or less in front or
    behind (镇中心小学 / 中心小学, 大王庄 / 大王庄村). Numbered names start with "#", so 3组 never ends 13组."""
    return a == b or a.endswith(b) or b.endswith(a) or a.startswith(b) or b.startswith(a)


# --- topics -------------------------------------------------------------------------------------------

# The problems a town's residents report, each with words that name it. The first word is the topic's
# label (``keywords``). Words of two or more characters are matched after homophone folding (so typos
# match too); single characters as written (a folded 灯 would also be 等).
_TOPICS = {
    "light": "路灯 灯不亮 灯坏 灯泡 灯杆 灯管 照明 很黑 摸黑 看不见路 看不清路 不亮 黑灯瞎火 灯 太黑 好黑 亮化",
    "flood": "积水 内涝 水淹 淹水 淹了 被淹 泡水 蹚水 趟水 涉水 排水 排不出 排不掉 水漫 漫进 汪洋 成河 水深 淹 排涝 "
        "倒灌 积涝 淹没 泡在水里",
    "rain": "下雨 大雨 暴雨 雨天 雨后 雨水 淋雨",
    "garbage": "垃圾 清运 垃圾桶 垃圾池 垃圾站 垃圾车 垃圾堆 乱扔 乱丢 乱倒 保洁 环卫 清扫 打扫 收垃圾 烂菜叶 "
        "生活垃圾 建筑垃圾 收运 没人拉 拉走",
    "noise": "噪音 噪声 扰民 喧哗 睡不着 睡不成 轰隆 音响 喇叭 广场舞 打桩 声音大 太吵 吵死 吵得 吵 吵闹 吵醒 震耳 "
        "放炮 唱歌 卡拉ok",
    "nightlife": "烧烤 夜宵 划拳 喝酒",
    "parking": "停车 乱停 车位 占道 停放 停满 违停 贴条 停车场 随便停 停在 停到 停车位 车乱停 僵尸车 挡门",
    "traffic": "交通 拥堵 堵车 斑马线 红绿灯 减速带 护学岗 疏导 车速 超速 开得快 开得飞快 过马路 车流量 水泄不通 "
        "塞车 堵成一锅粥 交警 车祸 事故",
    "tap_water": "自来水 供水 水管 水龙头",
    "water_supply": "停水 水压 没水 断水 出水 水流 用水 水小 二次供水 热水器 接不到水 没有水 水压低 水量小 来水 "
        "断供 上不去 供水不足",
    "water_quality": "水质 浑浊 发黄 黄泥 水垢 漂白粉 不敢喝 浑 黄水 水黄 沙子 铁锈 锈水",
    "road": "坑洼 坑坑洼洼 破损 开裂 塌陷 修路 路烂 烂路 很烂 泥巴 硬化 不平 修补 压坏 压烂 颠 坑 路坏 颠簸 泥泞 "
        "裂缝 补路",
    "elderly": "养老 老年 高龄 独居 敬老院 日间照料 老人家",
    "meals": "助餐 食堂 吃饭 送饭 送餐 做饭 午餐 饭菜 伙食 老年餐 长者食堂 幸福食堂 吃饭难",
    "smell": "臭味 异味 气味 恶臭 臭气 难闻 刺鼻 味道 怪味 熏 臭 臭烘烘 熏人 气味大 味道大",
    "sewage": "污水 排污 化粪池 下水道 反水 冒水 粪水 脏水 窨井 地漏 排水沟 污水管 排污管 管道堵 泔水 外溢",
    "pollution": "污染 变黑 发黑 一层油 排放",
    "river": "河道 河面 漂浮物 水葫芦 打捞 清淤 死鱼 河边 岸边 河沟 河塘 黑臭 漂浮 河长",
    "irrigation": "灌溉 浇地 水渠 沟渠 机井 水泵 放水 干旱 天旱 秧苗 庄稼 农田 田里 地里 渠 灌溉渠 排灌 浇灌",
    "bus": "公交 班车 等车 坐车 公交车 大巴 中巴 客车 班线",
    "bus_service": "班次 末班 首班 车次 发车 收班 才一班 才来一趟 等半天 等不到车 间隔长",
    "bus_stop": "站台 候车亭 候车 雨棚 遮雨 座椅 站牌",
    "insurance": "医保 报销 新农合 合作医疗 社保 医疗保险 门诊 异地就医 结算 参保",
    "signal": "信号 网络 网路 网速 宽带 基站 4g 5g 上网 网课 断网 没网 打不通 打不出 运营商 wifi 信号弱 没信号 网卡 "
        "卡顿 无线 光纤 通信",
    "construction": "施工 工地 打桩 挖掘机 工程",
    "air": "废气 黑烟 冒烟 烟尘 粉尘 空气 烟囱 呛",
    "dust": "扬尘 灰尘 尘土 灰大 洒水",
    "trucks": "货车 运输车 罐车 超载 渣土车 拉货",
    "bridge": "护栏 栏杆 防护栏 桥面 危桥 桥梁",
    "embankment": "河堤 堤坝 堤岸 塌方 垮塌 加固 决口 汛期 防汛",
    "heat": "高温 中暑 闷热 降温 空调 风扇 通风 排风扇",
    "vendors": "摊贩 小摊 摆摊 流动摊 零食 三无 辣条 炸串 烤肠 小吃 糖葫芦",
    "hygiene": "卫生 苍蝇 蚊子 老鼠 脏",
    "power": "停电 电压 电线 跳闸 变压器 断电",
    "jam": "堵 挤",
    "dogs": "流浪狗 野狗 狗咬 遛狗 狗屎",
    "trees": "树枝 倒树 修剪 绿化 树木",
    "manhole": "井盖",
    "lift": "电梯",
    "property": "物业",
    "gas": "燃气 天然气 煤气",
    "toilet": "厕所 公厕",
    "wages": "工资 拖欠 欠薪",
    "benefits": "低保 补贴 困难户",
}
_LABELS = {topic: words.split()[0] for topic, words in _TOPICS.items()}
# Topics that set the scene of many problems rather than name one (rain comes with flooding and with a bus stop
# without a roof; a smell with rubbish, sewage and a river): they count half.
_CONTEXT = {"rain", "bus", "tap_water", "smell", "hygiene", "elderly", "construction", "dust", "river", "jam"}
_WEIGHT = {topic: 0.5 if topic in _CONTEXT else 1.0 for topic in _TOPICS}


@cache
def _topic_index() -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """Folded words by first character (longest first), and single characters, each with its topic."""
    by_first: dict[str, list[tuple[str, str]]] = {}
    single: dict[str, str] = {}
    for topic, words in _TOPICS.items():
        for word in words.split():
            if len(word) == 1:
                single[word] = topic
            else:
                folded = _fold(word)
                by_first.setdefault(folded[0], []).append((folded, topic))
    for entries in by_first.values():
        entries.sort(key=lambda e: -len(e[0]))
    return by_first, single


def _topics(text: str, folded: str) -> set[str]:
    by_first, single = _topic_index()
    found = {single[c] for c in text if c in single}
    i, n = 0, len(folded)
    while i < n:
        for word, topic in by_first.get(folded[i], ()):
            if folded.startswith(word, i):
                found.add(topic)
                i += len(word) - 1
                break
        i += 1
    return found


# --- features and score -------------------------------------------------------------------------------

# Words that say nothing about the problem: taken out of the wording, and never offered as keywords.
_FILLER = sorted(
    "希望 建议 反映 问题 一下 麻烦 谢谢 请问 您好 你好 有关部门 相关部门 政府 尽快 赶快 赶紧 解决 处理 重视 管一管"
    " 管管 没人管 有没有人管 到底 能不能 可不可以 是不是 什么时候 我们 你们 他们 大家 这个 那个 这些 那些 这里 那里"
    " 这边 那边 这段 那段 一直 已经 现在 还是 还有 而且 但是 因为 所以 就是 真的 实在 非常 特别 严重 好久 好几"
    " 几天 一个 天天 每天 经常 老是 总是 情况 居民 村民 群众 老百姓 什么 怎么 知道 不知道 投诉 请 谢 门口 附近 旁边"
    " 路边 边上 周边 一带 这一片".split(),
    key=len, reverse=True,
)
_FILLER_PATTERN = re.compile("|".join(map(re.escape, _FILLER)))
# Characters that join nothing: they split the text, so no bigram spans them.
_BREAK = set("的了地得着过吗呢吧啊呀嘛哦咯嘞噻撒啦哈和与及或也都就还又很太最更再已才只我你他她它们这那哪个些是在")
_ASCII_WORD = re.compile("[a-z0-9]+")


def _problem_text(content: str) -> tuple[str, str, list[tuple[str, str]]]:
    """The normalised content with its places blanked out and filler words removed (as written and
    folded), and the places it names."""
    text = _normalise(content)
    places, spans = _places(text)
    if spans:
        chars = list(text)
        for start, end in spans:
            chars[start:end] = " " * (end - start)
        text = "".join(chars)
    text = _FILLER_PATTERN.sub(" ", text)
    return text, _fold(text), places


_BREAK_TABLE = {ord(c): " " for c in _BREAK}
_CJK_RUN = re.compile("[\u4e00-\u9fff\u3400-\u4dbf]+")


def _grams(text: str) -> tuple[set[str], set[str]]:
    """The bigrams (and ASCII words) and the characters of ``text``; no bigram spans a break."""
    grams = set(_ASCII_WORD.findall(text))
    chars: set[str] = set()
    for run in _CJK_RUN.findall(text.translate(_BREAK_TABLE)):
        chars.update(run)
        grams.update(map(str.__add__, run, run[1:]))
    return grams, chars


def features(content: str, location: str = "") -> Features:
    """What ``score`` needs of one form (content and its optional free-text location)."""
    text, folded, places = _problem_text(content or "")
    if location:
        places = places + _places(_normalise(location))[0]
    grams, chars = _grams(folded)
    return Features(grams=frozenset(grams), chars=frozenset(chars), topics=frozenset(_topics(text, folded)),
                    places=tuple(sorted(set(places))))


def _place_factor(a: Features, b: Features, rule: Rule) -> float:
    if not a.places or not b.places:
        return rule.place_unknown
    theirs: dict[str, list[str]] = {}
    for kind, name in b.places:
        theirs.setdefault(kind, []).append(name)
    mine: dict[str, list[str]] = {}
    for kind, name in a.places:
        if kind in theirs:
            mine.setdefault(kind, []).append(name)
    if not mine:
        return rule.place_unshared
    for kind, names in mine.items():
        if not any(_same_place(name, other) for name in names for other in theirs[kind]):
            return rule.place_conflict
    return 1.0


def score(a: Features, b: Features, rule: Rule = Rule()) -> float:
    """How likely ``a`` and ``b`` report the same issue, in [0, 1]; symmetric."""
    shared_grams = len(a.grams & b.grams)
    shared_topics = a.topics & b.topics
    if not shared_grams and not shared_topics:
        return 0.0  # no word and no topic in common: never the same issue (and ``terms`` rely on it)
    shared = shared_grams + len(a.chars & b.chars)
    wording = min(1.0, shared / math.sqrt((len(a.grams) + len(a.chars)) * (len(b.grams) + len(b.chars)))
                  / rule.wording_full)
    if a.topics and b.topics:
        weight = _WEIGHT.__getitem__
        topics = 2 * sum(map(weight, shared_topics)) / (sum(map(weight, a.topics)) + sum(map(weight, b.topics)))
        problem = rule.topic_weight * topics + (1 - rule.topic_weight) * wording
    else:
        problem = wording
    return problem * _place_factor(a, b, rule)


def same_issue(a: Features, b: Features, rule: Rule = Rule()) -> bool:
    return score(a, b, rule) >= rule.threshold


# --- for the database and the pages -------------------------------------------------------------------


def terms(content: str, location: str = "") -> list[str]:
    """Distinct short index terms of a form: the folded bigrams and ASCII words of its problem text, and its
    topics as ``t:<topic>``. Stored per form, they fetch the candidates worth scoring: ``score`` is 0 for two
    forms that share no term, so every pair ``same_issue`` accepts shares at least one. Folded: homophones
    share a term, so terms are for matching, not for showing."""
    feats = features(content, location)
    return sorted(feats.grams) + sorted(f"t:{topic}" for topic in feats.topics)


def keywords(texts: Sequence[str], k: int = 5) -> list[str]:
    """Up to ``k`` words naming what a group of similar forms is about, most shared first: the problems'
    labels (路灯, 积水), the places named (三组, 幸福路), then the wording most of them share; no filler."""
    counts: Counter[str] = Counter()
    order: dict[str, int] = {}
    for text in texts:
        problem, folded, places = _problem_text(text or "")
        found: list[str] = [_LABELS[t] for t in sorted(_topics(problem, folded), key=list(_TOPICS).index)]
        found += [name.lstrip("#") for _kind, name in places]
        found += sorted(_grams(problem)[0], key=problem.find)  # wording as written, not folded
        for word in dict.fromkeys(found):
            counts[word] += 1
            order.setdefault(word, len(order))
    chosen: list[str] = []
    for word, count in sorted(counts.items(), key=lambda item: (-item[1], order[item[0]])):
        if len(chosen) == k:
            break
        if any(word in c or c in word for c in chosen):
            continue
        if count > 1 or len(texts) == 1:
            chosen.append(word)
    return chosen


_JOINS_PREVIOUS = {"\u200d", "\ufe0e", "\ufe0f"}  # zero-width joiner, variation selectors


def _continues(c: str) -> bool:
    """``c`` belongs to the character before it: never cut before it."""
    return (unicodedata.combining(c) > 0 or unicodedata.category(c) in ("Mn", "Me") or c in _JOINS_PREVIOUS
            or "\U0001f3fb" <= c <= "\U0001f3ff" or "\udc00" <= c <= "\udfff")


def snippet(content: str, limit: int = 60) -> str:
    """The first words of ``content`` in at most ``limit`` characters, whitespace collapsed, ending in "…"
    when cut; never cut inside a character made of several code points."""
    text = " ".join((content or "").split())
    if len(text) <= limit:
        return text
    cut = max(limit - 1, 0)
    while cut > 0 and (_continues(text[cut]) or text[cut - 1] == "\u200d" or "\ud800" <= text[cut - 1] <= "\udbff"):
        cut -= 1
    return text[:cut].rstrip() + "…"
