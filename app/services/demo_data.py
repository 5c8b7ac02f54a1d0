"""Demo data for the Minyi (民意) app: Party Representative Workrooms of 洛社镇.

Pure data module. All names, phone numbers and cases are fictitious and only
meant for demonstrations and local development. Relative dates are expressed
as day offsets from "today" so the seeder can place them on the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass


# ---------------------------------------------------------------------------
# Data shapes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoWorkroom:
    code: str
    name: str
    address: str
    area: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class DemoRepresentative:
    name: str
    level: str
    phone: str
    workroom_codes: tuple[str, ...]


@dataclass(frozen=True)
class DemoUnit:
    name: str


@dataclass(frozen=True)
class DemoServicePoint:
    workroom_code: str
    title: str
    place_type: str
    location: str
    day_offset: int
    start_hour: int
    hours: int
    representative_indexes: tuple[int, ...]


@dataclass(frozen=True)
class DemoForm:
    content: str
    category: str
    channel: str
    workroom_code: str | None
    service_point_index: int | None
    submitter_name: str | None
    submitter_phone: str | None
    days_ago: int
    outcome: str
    unit_index: int | None
    instructions: str | None
    reply: str | None
    satisfaction: str | None
    decline_reason: str | None
    public: bool
    # Where it is about, as a mini-program sends it (wx.getLocation and the picked place): shown on maps
    # by Open311 clients. Forms heard at a workroom take the workroom's place instead.
    place: tuple[str, float, float] | None = None


# ---------------------------------------------------------------------------
# Workrooms
# ---------------------------------------------------------------------------

WORKROOMS: tuple[DemoWorkroom, ...] = (
    DemoWorkroom(
        code="LS-01",
        name="洛社镇党代表工作室（镇区）",
        address="无锡市惠山区洛社镇人民路168号镇党群服务中心一楼",
        area="洛社镇区第一网格",
        latitude=31.6523,
        longitude=120.1921,
    ),
    DemoWorkroom(
        code="LS-02",
        name="石塘湾村党代表工作室",
        address="无锡市惠山区洛社镇石塘湾村石塘路28号村党群服务中心",
        area="石塘湾片区第三网格",
        latitude=31.6762,
        longitude=120.2183,
    ),
    DemoWorkroom(
        code="LS-03",
        name="张镇桥村党代表工作室",
        address="无锡市惠山区洛社镇张镇桥村张镇桥路56号",
        area="张镇桥村第一网格",
        latitude=31.6414,
        longitude=120.1712,
    ),
    DemoWorkroom(
        code="LS-04",
        name="万马村党代表工作室",
        address="无锡市惠山区洛社镇万马村万马路12号村委会二楼",
        area="万马村第二网格",
        latitude=31.6681,
        longitude=120.1584,
    ),
    DemoWorkroom(
        code="LS-05",
        name="双庙村党代表工作室",
        address="无锡市惠山区洛社镇双庙村双庙街18号",
        area="双庙村第一网格",
        latitude=31.6342,
        longitude=120.2056,
    ),
    DemoWorkroom(
        code="LS-06",
        name="新开河村党代表工作室",
        address="无锡市惠山区洛社镇新开河村新开河路88号村新时代文明实践站",
        area="新开河村第二网格",
        latitude=31.6597,
        longitude=120.2312,
    ),
    DemoWorkroom(
        code="LS-07",
        name="福山村党代表工作室",
        address="无锡市惠山区洛社镇福山村福山路99号",
        area="福山村第一网格",
        latitude=31.6873,
        longitude=120.1846,
    ),
    DemoWorkroom(
        code="LS-08",
        name="杨市社区党代表工作室",
        address="无锡市惠山区洛社镇杨市社区杨市大街102号社区服务中心",
        area="杨市片区第二网格",
        latitude=31.6285,
        longitude=120.1493,
    ),
    DemoWorkroom(
        code="LS-09",
        name="秦村村党代表工作室",
        address="无锡市惠山区洛社镇秦村村秦村路26号",
        area="秦村村第一网格",
        latitude=31.6942,
        longitude=120.1671,
    ),
    DemoWorkroom(
        code="LS-10",
        name="红明村党代表工作室",
        address="无锡市惠山区洛社镇红明村红明路15号村党群服务站",
        area="红明村第三网格",
        latitude=31.6236,
        longitude=120.2428,
    ),
    DemoWorkroom(
        code="LS-11",
        name="花苑社区党代表工作室",
        address="无锡市惠山区洛社镇花苑路8号社区邻里中心二楼",
        area="花苑社区第一网格",
        latitude=31.6481,
        longitude=120.2014,
    ),
)


# ---------------------------------------------------------------------------
# Representatives (phone numbers are fictitious)
# ---------------------------------------------------------------------------

REPRESENTATIVES: tuple[DemoRepresentative, ...] = (
    DemoRepresentative("周建华", "province", "13800000101", ("LS-01",)),          # 0
    DemoRepresentative("钱国平", "city", "13800000102", ("LS-01", "LS-11")),      # 1
    DemoRepresentative("陈月琴", "city", "13800000103", ("LS-08",)),              # 2
    DemoRepresentative("吴志强", "city", "13800000104", ("LS-03", "LS-04")),      # 3
    DemoRepresentative("华建新", "district", "15000000201", ("LS-01",)),          # 4
    DemoRepresentative("顾晓燕", "district", "15000000202", ("LS-02",)),          # 5
    DemoRepresentative("许伟", "district", "15000000203", ("LS-05", "LS-06")),    # 6
    DemoRepresentative("蒋丽芬", "district", "15000000204", ("LS-07",)),          # 7
    DemoRepresentative("浦建东", "district", "15000000205", ("LS-09", "LS-10")),  # 8
    DemoRepresentative("王卫东", "district", "15000000206", ("LS-11",)),          # 9
    DemoRepresentative("秦红英", "town", "18900000301", ("LS-09",)),              # 10
    DemoRepresentative("张明", "town", "18900000302", ("LS-03",)),                # 11
    DemoRepresentative("邹雪梅", "town", "18900000303", ("LS-02",)),              # 12
    DemoRepresentative("过永刚", "town", "18900000304", ("LS-04",)),              # 13
    DemoRepresentative("沈惠娟", "town", "18900000305", ("LS-05",)),              # 14
    DemoRepresentative("朱海军", "town", "18900000306", ("LS-06",)),              # 15
    DemoRepresentative("杨桂芳", "town", "18900000307", ("LS-08",)),              # 16
    DemoRepresentative("孙建平", "town", "18900000308", ("LS-07",)),              # 17
    DemoRepresentative("胡静", "town", "18900000309", ("LS-10",)),                # 18
    DemoRepresentative("徐志良", "town", "18900000310", ("LS-01",)),              # 19
    DemoRepresentative("钱梦婷", "town", "19900000401", ("LS-11",)),              # 20
    DemoRepresentative("华国强", "town", "19900000402", ("LS-02",)),              # 21
    DemoRepresentative("陆文娟", "town", "19900000403", ("LS-03",)),              # 22
    DemoRepresentative("邵振东", "town", "19900000404", ("LS-04",)),              # 23
    DemoRepresentative("丁美琴", "town", "19900000405", ("LS-05",)),              # 24
    DemoRepresentative("尤伟明", "town", "19900000406", ("LS-06",)),              # 25
    DemoRepresentative("唐小红", "town", "19900000407", ("LS-07",)),              # 26
    DemoRepresentative("缪俊", "town", "19900000408", ("LS-08",)),                # 27
    DemoRepresentative("堵国良", "town", "19900000409", ("LS-09",)),              # 28
    DemoRepresentative("倪彩芳", "town", "19900000410", ("LS-10",)),              # 29
)


# ---------------------------------------------------------------------------
# Handling units (承办单位)
# ---------------------------------------------------------------------------

UNITS: tuple[DemoUnit, ...] = (
    DemoUnit("镇城建办"),            # 0
    DemoUnit("镇生态环境办"),        # 1
    DemoUnit("洛社派出所"),          # 2
    DemoUnit("镇社会事业局"),        # 3
    DemoUnit("镇农业农村局"),        # 4
    DemoUnit("洛社市场监管分局"),    # 5
    DemoUnit("镇综合执法局"),        # 6
    DemoUnit("镇经济发展局"),        # 7
    DemoUnit("镇应急管理局"),        # 8
    DemoUnit("镇人社中心"),          # 9
    DemoUnit("洛社镇卫生院"),        # 10
    DemoUnit("石塘湾村村委会"),      # 11
)


# ---------------------------------------------------------------------------
# Mobile service points (流动服务点)
# ---------------------------------------------------------------------------

SERVICE_POINTS: tuple[DemoServicePoint, ...] = (
    DemoServicePoint("LS-01", "洛社菜市场流动服务点", "market",
                     "洛社菜市场东门（人民路口）", -148, 8, 2, (4, 19)),                 # 0
    DemoServicePoint("LS-02", "石塘湾村文化礼堂服务点", "village",
                     "石塘湾村文化礼堂", -135, 9, 2, (5, 12)),                           # 1
    DemoServicePoint("LS-03", "张镇桥工业集中区企业走访服务点", "workshop",
                     "张镇桥工业集中区管理服务中心", -121, 14, 2, (3, 22)),              # 2
    DemoServicePoint("LS-11", "花苑社区邻里节服务点", "event",
                     "花苑社区中心广场", -107, 9, 3, (1, 9, 20)),                        # 3
    DemoServicePoint("LS-05", "双庙村村民议事厅服务点", "village",
                     "双庙村村民议事厅", -93, 14, 2, (14, 24)),                          # 4
    DemoServicePoint("LS-08", "杨市农贸市场流动服务点", "market",
                     "杨市农贸市场北门", -80, 8, 2, (16, 27)),                           # 5
    DemoServicePoint("LS-04", "万马村纺织企业车间服务点", "workshop",
                     "万马村工业小区纺织企业职工食堂", -66, 13, 2, (13, 23)),            # 6
    DemoServicePoint("LS-07", "福山村老年活动中心服务点", "village",
                     "福山村老年活动中心", -52, 9, 2, (7, 17, 26)),                      # 7
    DemoServicePoint("LS-06", "新开河村防汛安全宣传服务点", "event",
                     "新开河村运河堤岸防汛物资仓库前", -38, 15, 2, (6, 15)),             # 8
    DemoServicePoint("LS-09", "秦村村文体广场服务点", "village",
                     "秦村村文体广场", -24, 16, 2, (10, 28)),                            # 9
    DemoServicePoint("LS-10", "红明村高标准农田田头服务点", "other",
                     "红明村南片高标准农田机耕路口", -11, 8, 2, (18, 29)),               # 10
    DemoServicePoint("LS-01", "“敬老月”党代表集中接待活动", "event",
                     "洛社镇党群服务中心广场", 3, 9, 3, (0, 1, 4)),                      # 11
    DemoServicePoint("LS-03", "张镇桥菜场流动服务点", "market",
                     "张镇桥菜场入口", 7, 8, 2, (11, 22)),                               # 12
    DemoServicePoint("LS-04", "万马村企业车间服务点", "workshop",
                     "万马村工业小区综合服务站", 14, 14, 2, (3, 23)),                    # 13
)


# ---------------------------------------------------------------------------
# Standard office instructions (批示)
# ---------------------------------------------------------------------------

_I_STD = "请于规定时限内核实处理并答复群众。"
_I_SITE = "请会同属地村（社区）实地查看，提出解决方案后答复群众。"
_I_SAFE = "涉及安全隐患，请尽快核实并先行处置，处理结果及时反馈工作室。"
_I_STUDY = "请认真研究，能解决的抓紧解决，暂不具备条件的做好解释说明。"
_I_JOINT = "请牵头会同相关部门联合处置，办理情况及时反馈党代表工作室。"
_I_POLICY = "请做好政策解释，帮助群众按程序办理。"


# ---------------------------------------------------------------------------
# Opinion forms (民意表)
# ---------------------------------------------------------------------------

FORMS: tuple[DemoForm, ...] = (
    # ----- Channel: workroom (40) -----
    DemoForm(
        content="人民路与洛城大道路口早晚高峰车流量大，行人绿灯只有二十几秒，老年人走到一半就变灯了，很危险。建议延长行人过街时间，中间增设安全岛。",
        category="urban_traffic", channel="workroom", workroom_code="LS-01", service_point_index=None,
        submitter_name="王阿姨", submitter_phone="13912340101", days_ago=312,
        outcome="closed", unit_index=0, instructions=_I_STD,
        reply="经镇城建办会同交警洛社中队现场测算，已将该路口行人绿灯时间由25秒调整为35秒，并在路口中央增设行人二次过街安全岛，相关工程已完工。感谢您对交通安全的关心。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="新雅路菜场后面的垃圾分类投放点经常满溢，厨余垃圾桶没有盖子，夏天气味很大，苍蝇也多，希望增加清运次数。",
        category="environment", channel="workroom", workroom_code="LS-01", service_point_index=None,
        submitter_name="李先生", submitter_phone="13912340102", days_ago=287,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已督促保洁公司将该投放点厨余垃圾清运由每日一次调整为早晚各一次，更换带盖分类桶6只，并安排专人定时冲洗消杀，后续纳入日常巡查。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="镇区老年助餐点只有人民路一家，离北边几个小区太远，腿脚不便的老人来回很困难。能否在北片再设一个助餐点，或者提供送餐上门？",
        category="livelihood", channel="workroom", workroom_code="LS-01", service_point_index=None,
        submitter_name="张女士", submitter_phone="15851230103", days_ago=41,
        outcome="answered", unit_index=3, instructions=_I_STUDY,
        reply="镇社会事业局已将北片助餐点建设列入今年民生实事项目，初步选址在花苑社区邻里中心一楼，预计年底前投用。在此之前，80周岁以上独居老人可向所在社区申请送餐上门服务。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="镇区几个老小区没有门卫，晚上很多人把电动车推进楼道充电，上个月还丢了两辆电瓶车，希望加装监控和集中充电桩。",
        category="public_security", channel="workroom", workroom_code="LS-01", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=198,
        outcome="closed", unit_index=2, instructions=_I_STD,
        reply="洛社派出所已对相关小区开展治安和消防隐患排查，劝离楼道充电车辆40余辆，并协调社区在小区出入口新增高清监控4路。集中充电桩选址正在征求居民意见，确定后尽快安装。",
        satisfaction="basically_satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="洛社中心小学放学时校门口接孩子的车辆乱停，把人民路堵得水泄不通，孩子们在车缝里穿行很危险。建议高峰时段安排交警和志愿者疏导。",
        category="education_health", channel="workroom", workroom_code="LS-01", service_point_index=None,
        submitter_name="陈先生", submitter_phone="18605100105", days_ago=256,
        outcome="closed", unit_index=3, instructions=_I_JOINT,
        reply="镇社会事业局会同洛社派出所、交警中队设立校门口护学岗，上下学高峰每天安排警力和家长志愿者疏导，并在学校东侧开放一处临时接送停靠区，目前通行秩序明显好转。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="石塘湾村西边通往自然村的那段水泥路年久失修，坑坑洼洼，下雨天积水，电动车骑过去经常打滑，希望尽快修补。",
        category="urban_traffic", channel="workroom", workroom_code="LS-02", service_point_index=None,
        submitter_name="顾师傅", submitter_phone="13961500106", days_ago=301,
        outcome="closed", unit_index=11, instructions=_I_SITE,
        reply="石塘湾村村委会已对该段约600米道路进行全面修补，破损路面重新浇筑，并在低洼处增设排水沟，工程已于本月中旬完工，欢迎继续监督。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="石塘湾老街后面的小河浜水发黑发臭，河面上漂着塑料袋和泡沫，附近居民夏天都不敢开窗，希望清淤治理。",
        category="environment", channel="workroom", workroom_code="LS-02", service_point_index=None,
        submitter_name="邹阿姨", submitter_phone=None, days_ago=233,
        outcome="closed", unit_index=1, instructions=_I_STD,
        reply="镇生态环境办已组织对该河浜实施清淤疏浚，清理淤泥约1200立方米，排查封堵沿河雨污混接点3处，并落实河长巡河和保洁员日常打捞，目前水质已明显改善。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="石塘湾村南片的灌溉泵站设备老化，今年春灌时电机坏了两次，耽误了秧田放水，希望更换设备。",
        category="agriculture", channel="workroom", workroom_code="LS-02", service_point_index=None,
        submitter_name="华先生", submitter_phone="13771230108", days_ago=62,
        outcome="answered", unit_index=4, instructions=_I_STUDY,
        reply="镇农业农村局已派技术人员现场检查，泵站电机和控制柜确需更换，已列入今冬明春农田水利维修计划，明年春灌前完成。春灌期间如遇故障，可直接联系村农技员应急抢修。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="我们是张镇桥工业集中区的一家小型机械加工企业，想申请技改补贴，但不清楚申报条件和流程，网上的文件也看不太懂，希望有人上门指导。",
        category="economy", channel="workroom", workroom_code="LS-03", service_point_index=None,
        submitter_name="张经理", submitter_phone="18921500109", days_ago=244,
        outcome="closed", unit_index=7, instructions=_I_STD,
        reply="镇经济发展局已安排专人上门对接，讲解了今年区级工业企业技术改造扶持政策的申报条件和材料要求，并协助企业完成网上申报，评审结果将第一时间告知。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="张镇桥路北段有四五盏路灯不亮已经一个多月了，晚上下班骑车回家一片漆黑，路边就是河，很不安全。",
        category="urban_traffic", channel="workroom", workroom_code="LS-03", service_point_index=None,
        submitter_name="陆先生", submitter_phone="13861200110", days_ago=178,
        outcome="closed", unit_index=0, instructions=_I_SAFE,
        reply="镇城建办接件当天即安排路灯维护单位现场排查，系地下电缆老化短路所致，已更换电缆约300米、修复路灯5盏，目前该路段路灯已全部正常亮灯。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="张镇桥村东面有家喷漆作坊，晚上经常偷偷作业，油漆味很刺鼻，家里小孩闻了直咳嗽，希望环保部门来查一查。",
        category="environment", channel="workroom", workroom_code="LS-03", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=52,
        outcome="answered", unit_index=1, instructions=_I_JOINT,
        reply="镇生态环境办会同综合执法局开展夜间突击检查，发现该作坊未配套废气处理设施，已责令其立即停止喷漆作业并依法立案调查，后续将持续开展夜间巡查，防止反弹。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="我今年满60周岁了，以前在万马的纺织厂干过十几年，社保中间断过几年，想问问还能不能补缴，退休手续怎么办。",
        category="livelihood", channel="workroom", workroom_code="LS-04", service_point_index=None,
        submitter_name="过阿姨", submitter_phone="15961800112", days_ago=268,
        outcome="closed", unit_index=9, instructions=_I_POLICY,
        reply="镇人社中心已电话联系您本人。根据您的参保记录，可按政策延缴至满15年后按月领取养老金。请携带身份证、户口簿到镇便民服务中心人社窗口办理，工作人员会全程协助。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="万马村有几户人家在宅基地上搭棚子开麻将室，每天半夜吵吵闹闹，还有不少外来人员聚集，怀疑有赌博，希望管一管。",
        category="public_security", channel="workroom", workroom_code="LS-04", service_point_index=None,
        submitter_name="邵先生", submitter_phone=None, days_ago=219,
        outcome="closed", unit_index=2, instructions=_I_STD,
        reply="洛社派出所已对该处开展多次检查，暂未发现赌博违法行为，已对经营者噪音扰民问题进行批评教育，要求晚上10点后停止营业。下一步将加强夜间巡逻，如发现赌博线索请及时拨打110。",
        satisfaction="unsatisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="万马村到洛社镇区的镇村公交一小时才一班，末班车下午五点半就没了，厂里下班的人只能打车，希望增加班次、延长收班时间。",
        category="urban_traffic", channel="workroom", workroom_code="LS-04", service_point_index=None,
        submitter_name="万先生", submitter_phone="18762100114", days_ago=34,
        outcome="answered", unit_index=0, instructions=_I_SITE,
        reply="镇城建办已将您的意见转交区公交公司。经客流调查，拟在早晚高峰各加密2个班次，末班车延长至晚上7点，调整方案报批后将在各站点公示，预计下月实施。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="双庙村今年稻田里的稻飞虱比往年多，村里种田的老人不会看病虫害，打药也不知道用什么药，希望农技站派人来指导。",
        category="agriculture", channel="workroom", workroom_code="LS-05", service_point_index=None,
        submitter_name="沈大伯", submitter_phone=None, days_ago=290,
        outcome="closed", unit_index=4, instructions=_I_STD,
        reply="镇农业农村局已组织农技人员到双庙村开展田间病虫害防治现场指导，发放防治技术明白纸200余份，并通过统防统治服务组为部分老人的承包田实施代防代治。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="双庙街附近有人把建筑垃圾和装修垃圾直接倒在河边空地上，越堆越多，还占了一部分道路，希望清理并装个监控。",
        category="environment", channel="workroom", workroom_code="LS-05", service_point_index=None,
        submitter_name="丁阿姨", submitter_phone="13685100116", days_ago=205,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已组织清运该处建筑垃圾约30车，并在空地周边设置围挡和警示牌。监控已申报安装计划，安装前由村网格员每日巡查，发现偷倒行为将依法处罚。",
        satisfaction="basically_satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="双庙村居家养老服务站活动室太小，只能放下两张桌子，老人来了没地方坐，能不能把旁边闲置的老村部改造一下用起来？",
        category="livelihood", channel="workroom", workroom_code="LS-05", service_point_index=None,
        submitter_name="许女士", submitter_phone="15106180117", days_ago=27,
        outcome="answered", unit_index=3, instructions=_I_STUDY,
        reply="镇社会事业局会同双庙村实地查看，老村部房屋主体结构安全，具备改造条件。改造方案已纳入明年村级养老服务设施提升计划，届时将增设阅览室和康复活动区。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="新开河村沿河那段堤岸有几处开裂下沉，去年汛期水位高的时候就渗水，眼看又要进入梅雨季，村民担心出问题。",
        category="urban_traffic", channel="workroom", workroom_code="LS-06", service_point_index=None,
        submitter_name="朱先生", submitter_phone="13812560118", days_ago=275,
        outcome="closed", unit_index=8, instructions=_I_SAFE,
        reply="镇应急管理局会同水利站现场勘察，确认堤岸存在局部裂缝和渗漏，已在汛前完成约80米堤段的加固和防渗处理，并将该段列为汛期重点巡查点位，安排专人值守。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="新开河村文化广场晚上跳广场舞的人很多，但只有一盏照明灯，角落里黑乎乎的，还有几件健身器材坏了，希望修一修。",
        category="other", channel="workroom", workroom_code="LS-06", service_point_index=None,
        submitter_name="尤阿姨", submitter_phone=None, days_ago=160,
        outcome="closed", unit_index=3, instructions=_I_STD,
        reply="镇社会事业局已协调为文化广场新增太阳能庭院灯6盏，维修更换损坏的健身器材4件，并在器材旁张贴安全使用说明和报修电话。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="新开河村卫生服务站的医生只有上午在，下午老人量血压、配降压药都要跑到镇卫生院，排队时间长，希望延长服务站开放时间。",
        category="education_health", channel="workroom", workroom_code="LS-06", service_point_index=None,
        submitter_name="蒋女士", submitter_phone="18352100120", days_ago=48,
        outcome="answered", unit_index=10, instructions=_I_STD,
        reply="洛社镇卫生院已调整村卫生服务站排班，自下月起工作日下午增加坐诊，高血压、糖尿病等慢性病常用药可在服务站直接配取，家庭医生每月上门随访一次。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="我老伴去年在市里医院住院做手术，城乡居民医保报销后自己还掏了不少钱，听说有大病保险可以二次报销，不知道怎么申请。",
        category="livelihood", channel="workroom", workroom_code="LS-07", service_point_index=None,
        submitter_name="孙阿婆", submitter_phone=None, days_ago=230,
        outcome="closed", unit_index=9, instructions=_I_POLICY,
        reply="镇人社中心工作人员已上门了解情况。经核查您老伴符合大病保险二次报销条件，部分费用系统已自动结算，其余票据已协助提交，审核通过后报销款将打入社保卡。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="福山村村口那座小桥桥面窄，护栏锈断了一截，前几天晚上有人骑电动车差点掉进河里，希望尽快修护栏，最好再加块限速牌。",
        category="urban_traffic", channel="workroom", workroom_code="LS-07", service_point_index=None,
        submitter_name="唐先生", submitter_phone="13706180122", days_ago=184,
        outcome="closed", unit_index=0, instructions=_I_SITE,
        reply="镇城建办已更换该桥护栏，新装不锈钢护栏约25米，并在桥两端设置限速和窄桥警示标志、反光道钉。桥梁整体加宽已列入农村桥梁改造计划。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="福山村最近好几户老人接到冒充医保局的诈骗电话，说医保卡被冻结要转账解冻，有位老人差点上当，希望派出所来村里讲讲防诈骗。",
        category="public_security", channel="workroom", workroom_code="LS-07", service_point_index=None,
        submitter_name="蒋先生", submitter_phone="15995100123", days_ago=22,
        outcome="answered", unit_index=2, instructions=_I_STD,
        reply="洛社派出所已联合福山村在老年活动中心开展反诈宣传讲座，讲解冒充医保、冒充公检法等常见骗局，并帮助到场老人安装国家反诈中心APP，今后每季度入村宣传一次。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="杨市农贸市场水产区地面总是积水，下水道经常堵，腥臭味很重，有的摊主把杀鱼的内脏直接扔在地上，希望加强管理。",
        category="environment", channel="workroom", workroom_code="LS-08", service_point_index=None,
        submitter_name="杨阿姨", submitter_phone="13915300124", days_ago=296,
        outcome="closed", unit_index=5, instructions=_I_STD,
        reply="市场监管分局已约谈市场开办方，督促对水产区排水管网进行疏通改造，增设带盖垃圾桶，落实摊位门前三包责任，并安排保洁员每两小时清扫一次。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="杨市大街两边店铺门口车子乱停，有的直接停在人行道上，推婴儿车都过不去，周末更严重，希望划定停车位。",
        category="urban_traffic", channel="workroom", workroom_code="LS-08", service_point_index=None,
        submitter_name="缪先生", submitter_phone=None, days_ago=150,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已对杨市大街开展违停专项整治，在道路一侧施划临时停车泊位42个，人行道加装隔离桩，周末高峰期增加巡查频次。",
        satisfaction="basically_satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="杨市老街上不少沿街门面空着，生意越来越冷清，建议镇里搞点夜市或者特色街区活动，带一带人气。",
        category="economy", channel="workroom", workroom_code="LS-08", service_point_index=None,
        submitter_name="陈老板", submitter_phone="18861800126", days_ago=39,
        outcome="answered", unit_index=7, instructions=_I_STUDY,
        reply="镇经济发展局已会同杨市社区研究老街商业提升方案，计划结合传统节庆举办特色市集，并对新入驻的特色餐饮、手作门店给予一定租金补贴，具体办法将在社区公告栏公布。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="秦村村北边的机耕路被收割机压得全是车辙，一下雨就成了烂泥塘，拖拉机开不进去，希望铺成硬化路。",
        category="agriculture", channel="workroom", workroom_code="LS-09", service_point_index=None,
        submitter_name="秦师傅", submitter_phone="13584100127", days_ago=318,
        outcome="closed", unit_index=4, instructions=_I_STD,
        reply="镇农业农村局已将该机耕路纳入高标准农田配套工程，铺设碎石路面约1.2公里，两侧开挖排水沟，工程已于夏收前完工，农机通行恢复正常。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="秦村村小区旁边有一片空地被人开荒种菜，还浇粪水，夏天臭气熏天，招蚊子苍蝇，希望整治一下。",
        category="environment", channel="workroom", workroom_code="LS-09", service_point_index=None,
        submitter_name="堵阿姨", submitter_phone=None, days_ago=172,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局会同秦村村开展毁绿种菜专项整治，清理菜地约800平方米并恢复绿化，设置宣传牌。村里将为有种植需求的村民统一规划“一米菜园”。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="我是被征地农民，社保是按老标准缴的，现在每月只有一千多块，和周边同龄人差距很大，希望提高被征地人员的养老待遇。",
        category="livelihood", channel="workroom", workroom_code="LS-09", service_point_index=None,
        submitter_name="秦先生", submitter_phone="15052100129", days_ago=140,
        outcome="closed", unit_index=9, instructions=_I_POLICY,
        reply="镇人社中心已向您解释被征地农民社会保障政策。待遇标准由市区统一制定并按年度调整，镇级无权单独提高。您可通过城乡居民养老保险补充参保提高待遇，具体测算可到人社窗口咨询。",
        satisfaction="unsatisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="红明村南面那片农田的排涝沟被芦苇和淤泥堵死了，去年梅雨季田里积水好几天，麦子烂了不少，希望汛前清一清。",
        category="agriculture", channel="workroom", workroom_code="LS-10", service_point_index=None,
        submitter_name="倪先生", submitter_phone="13961700130", days_ago=262,
        outcome="closed", unit_index=4, instructions=_I_SITE,
        reply="镇农业农村局已组织对红明村南片排涝沟清淤疏通，总长约2公里，清除芦苇杂草，并修复一处损坏的涵闸，排涝能力明显提升。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="红明村到惠山站没有直达公交，村里年轻人去上海、南京出差只能打车，单程要三四十块，建议开一条接驳线路。",
        category="urban_traffic", channel="workroom", workroom_code="LS-10", service_point_index=None,
        submitter_name="胡女士", submitter_phone="18015100131", days_ago=45,
        outcome="answered", unit_index=0, instructions=_I_STUDY,
        reply="镇城建办已与区交通运输部门对接，正在研究将现有镇村公交线路延伸至惠山站的方案，需综合考虑客流和站点设置，预计年内完成论证，届时向村民公布。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="花苑社区是老小区，六层楼没有电梯，楼上住了不少八九十岁的老人，下楼看病很难。听说加装电梯有补贴，希望社区帮忙牵头。",
        category="livelihood", channel="workroom", workroom_code="LS-11", service_point_index=None,
        submitter_name="钱阿姨", submitter_phone="13506180132", days_ago=240,
        outcome="closed", unit_index=0, instructions=_I_STD,
        reply="镇城建办会同花苑社区召开了加装电梯政策说明会，逐户征求意见。目前已有3个单元达成一致并完成设计，正在办理审批，市区两级补贴可覆盖大部分费用。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="花苑路上有家烧烤店每天晚上把桌子摆到人行道上，油烟直接排到楼上住户窗口，吵到凌晨一两点，打了12345也没有彻底解决。",
        category="environment", channel="workroom", workroom_code="LS-11", service_point_index=None,
        submitter_name="王先生", submitter_phone=None, days_ago=120,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已对该烧烤店占道经营行为立案查处，责令收回店外桌椅，督促加装油烟净化设备、规范排烟管道走向，执法中队将在夜间持续跟踪，确保不反弹。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="花苑社区附近的公办幼儿园名额紧张，今年好几个孩子只能去远处的民办园，接送不方便，希望考虑扩班或者新建幼儿园。",
        category="education_health", channel="workroom", workroom_code="LS-11", service_point_index=None,
        submitter_name="韩女士", submitter_phone="15261800134", days_ago=30,
        outcome="answered", unit_index=3, instructions=_I_STUDY,
        reply="镇社会事业局已将该片区学前教育资源纳入明年学位规划，附近公办幼儿园扩建工程已立项，建成后可新增6个班。今年秋季入园确有困难的家庭，可联系社区协调。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="人民路上新开了一家校外托管班，收了三四十个小学生，房子是民房改的，只有一个楼梯，不知道有没有消防审批，家长们比较担心。",
        category="education_health", channel="workroom", workroom_code="LS-01", service_point_index=None,
        submitter_name="周女士", submitter_phone="18921800135", days_ago=2,
        outcome="submitted", unit_index=None, instructions=None,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="双庙村通往312国道的路口没有信号灯，大货车车速很快，村民骑电动车出来左转非常危险，上个月刚发生过一起事故，希望装红绿灯。",
        category="urban_traffic", channel="workroom", workroom_code="LS-05", service_point_index=None,
        submitter_name="沈先生", submitter_phone="13771800136", days_ago=6,
        outcome="assigned", unit_index=0, instructions=_I_SAFE,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="杨市社区东边一家塑料颗粒厂最近夜里排出的气体有股焦糊味，附近几个楼道的居民都闻到了，希望环保部门晚上来测一测。",
        category="environment", channel="workroom", workroom_code="LS-08", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=9,
        outcome="assigned", unit_index=1, instructions=_I_STD,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="我和石塘湾村的一个包工头有工程款纠纷，他欠我三万多块钱拖了两年不给，希望党代表帮我把钱要回来。",
        category="other", channel="workroom", workroom_code="LS-02", service_point_index=None,
        submitter_name="邹先生", submitter_phone="13665100138", days_ago=88,
        outcome="declined", unit_index=None, instructions=None,
        reply=None, satisfaction=None,
        decline_reason="该事项属于民事债务纠纷，不在党代表工作室受理范围，建议通过人民调解或法律途径解决，可前往镇公共法律服务中心免费咨询。",
        public=False,
    ),
    DemoForm(
        content="秦村村很多老人有高血压、糖尿病，但每年的免费体检要到镇卫生院排一上午的队，能不能把体检车开到村里来？",
        category="education_health", channel="workroom", workroom_code="LS-09", service_point_index=None,
        submitter_name="高女士", submitter_phone=None, days_ago=19,
        outcome="answered", unit_index=10, instructions=_I_STD,
        reply="洛社镇卫生院已安排下月将流动体检车开进秦村村，为65周岁以上老人提供免费健康体检，具体日期由村委会通知，体检结果纳入家庭医生签约管理，异常指标专人跟踪。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="福山村不少土地流转给大户种葡萄，但今年的流转费到现在还没发，村民去问村里也说不清楚，希望了解一下情况。",
        category="agriculture", channel="workroom", workroom_code="LS-07", service_point_index=None,
        submitter_name="孙先生", submitter_phone="15806180140", days_ago=15,
        outcome="answered", unit_index=4, instructions=_I_JOINT,
        reply="镇农业农村局已会同福山村核查，因承包大户资金周转困难，部分流转费延迟支付。经协调，大户承诺本月底前付清，村委会将逐户确认到账，今后推行流转费先付后用。",
        satisfaction=None, decline_reason=None, public=False,
    ),

    # ----- Channel: service_point (30) -----
    # SP0 洛社菜市场 (-148)
    DemoForm(
        content="洛社菜市场有的摊位电子秤不准，上次买两斤排骨回家一称少了二两，希望市场监管部门定期检查计量器具。",
        category="livelihood", channel="service_point", workroom_code="LS-01", service_point_index=0,
        submitter_name="吴阿姨", submitter_phone=None, days_ago=148,
        outcome="closed", unit_index=5, instructions=_I_STD,
        reply="市场监管分局已对洛社菜市场开展计量器具专项检查，检定电子秤126台，对3台不合格电子秤依法处理，并在市场入口设置公平秤，方便群众复秤。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="菜场东门人民路边早上流动摊贩占道摆摊，加上买菜的电瓶车乱停，公交车都开不过去，每天早上堵半个多小时。",
        category="urban_traffic", channel="service_point", workroom_code="LS-01", service_point_index=0,
        submitter_name="徐先生", submitter_phone="13812400142", days_ago=148,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已在早市时段安排执法队员定点值守，引导流动摊贩进入市场内临时摊位经营，并在菜场东侧施划非机动车停放区，高峰时段拥堵情况已有所缓解。",
        satisfaction="basically_satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="菜市场二楼的熟食摊位没有防蝇罩，有的连健康证都没挂出来，建议查一查食品安全。",
        category="education_health", channel="service_point", workroom_code="LS-01", service_point_index=0,
        submitter_name=None, submitter_phone=None, days_ago=148,
        outcome="closed", unit_index=5, instructions=_I_STD,
        reply="市场监管分局对菜市场熟食区进行了全面检查，督促12户经营户配齐防蝇防尘设施、亮证经营，对2名未取得健康证的从业人员责令暂停上岗，取得健康证后方可经营。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    # SP1 石塘湾村文化礼堂 (-135)
    DemoForm(
        content="石塘湾村的垃圾分类亭只在早晚开放，上班族早上出门太早、晚上回来太晚都赶不上，只好把垃圾放在亭子外面。",
        category="environment", channel="service_point", workroom_code="LS-02", service_point_index=1,
        submitter_name="顾女士", submitter_phone="15152100144", days_ago=135,
        outcome="closed", unit_index=11, instructions=_I_STD,
        reply="石塘湾村村委会已调整垃圾分类投放时间，早间提前至6点、晚间延长至9点，并在亭边增设一处误时投放点，由督导员次日早上分拣清理。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="村里独居老人多，子女都在外地，希望村里能组织志愿者定期上门看看，帮忙打扫卫生、买点生活用品。",
        category="livelihood", channel="service_point", workroom_code="LS-02", service_point_index=1,
        submitter_name="华阿姨", submitter_phone=None, days_ago=135,
        outcome="closed", unit_index=11, instructions=_I_STD,
        reply="石塘湾村已组建“邻里守望”志愿服务队，对全村46位独居老人实行结对联系，每周至少上门探访一次，并为高龄独居老人安装了紧急呼叫设备。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="石塘湾到洛社的老公路边上行道树太茂密，挡住了路口视线和路灯，晚上路过看不清对面来车。",
        category="urban_traffic", channel="service_point", workroom_code="LS-02", service_point_index=1,
        submitter_name="邹先生", submitter_phone="18962100146", days_ago=135,
        outcome="closed", unit_index=0, instructions=_I_SAFE,
        reply="镇城建办已组织园林养护单位对该路段行道树进行修剪，重点清理遮挡路口视线和路灯的枝叶，共修剪树木80余棵，并将该路段纳入季度巡查修剪范围。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    # SP2 张镇桥工业集中区 (-121)
    DemoForm(
        content="工业集中区上下班高峰时，园区主干道和张镇桥路交叉口经常堵，货车、电动车混行，希望优化路口渠化。",
        category="urban_traffic", channel="service_point", workroom_code="LS-03", service_point_index=2,
        submitter_name="陆经理", submitter_phone="13951500147", days_ago=121,
        outcome="closed", unit_index=0, instructions=_I_JOINT,
        reply="镇城建办已对该路口实施渠化改造，增设右转专用道和非机动车等候区，重新施划标线并安装电子警察，改造后高峰期通行时间明显缩短。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="我们厂招工难，特别是数控操作工，附近年轻人不愿意进厂，希望镇里组织专场招聘会或者技能培训。",
        category="economy", channel="service_point", workroom_code="LS-03", service_point_index=2,
        submitter_name="吴经理", submitter_phone="18652100148", days_ago=121,
        outcome="closed", unit_index=7, instructions=_I_STD,
        reply="镇经济发展局联合镇人社中心在工业集中区举办了两场专场招聘会，28家企业进场，达成用工意向160余人，并开设数控车床操作免费培训班，首期学员已结业上岗。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="园区有几家企业的危化品仓库离员工宿舍很近，消防通道也被货物堵着，担心出事故。",
        category="public_security", channel="service_point", workroom_code="LS-03", service_point_index=2,
        submitter_name=None, submitter_phone=None, days_ago=121,
        outcome="closed", unit_index=8, instructions=_I_SAFE,
        reply="镇应急管理局已对集中区内涉危化品企业开展专项检查，责令2家企业清理占用的消防通道，1家企业将危化品仓库整改搬迁，整改情况已逐一复查到位。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    # SP3 花苑社区邻里节 (-107)
    DemoForm(
        content="花苑社区小区里停车位太少，晚上车子把消防通道都停满了，一旦有火情消防车根本进不来。",
        category="urban_traffic", channel="service_point", workroom_code="LS-11", service_point_index=3,
        submitter_name="钱先生", submitter_phone="13616180150", days_ago=107,
        outcome="closed", unit_index=0, instructions=_I_SITE,
        reply="镇城建办会同花苑社区统筹规划小区停车，利用边角空地新增停车位56个，在消防通道施划禁停标线。与相邻单位共享夜间停车位的方案正在协商中。",
        satisfaction="basically_satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="社区里的儿童游乐设施太旧了，滑梯都生锈了，塑胶地面也翘起来了，孩子玩的时候容易受伤。",
        category="livelihood", channel="service_point", workroom_code="LS-11", service_point_index=3,
        submitter_name="李女士", submitter_phone="15995300151", days_ago=107,
        outcome="closed", unit_index=3, instructions=_I_STD,
        reply="镇社会事业局已拨付专项经费对花苑社区儿童游乐区进行改造，更换滑梯、秋千等设施5套，重新铺设塑胶地面约300平方米，新设施已开放使用。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="现在很多事情都要在手机上办，老年人不会用，社区能不能开个智能手机培训班，教教怎么挂号、怎么用医保码。",
        category="other", channel="service_point", workroom_code="LS-11", service_point_index=3,
        submitter_name="王阿婆", submitter_phone=None, days_ago=107,
        outcome="closed", unit_index=3, instructions=_I_STD,
        reply="花苑社区联合镇社会事业局开设了“银龄数字课堂”，每周三下午授课，内容包括手机挂号、医保电子凭证使用、防范网络诈骗等，已开展8期，累计培训老人200余人次。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    # SP4 双庙村村民议事厅 (-93)
    DemoForm(
        content="双庙村有十几户人家的自来水管是二十多年前铺的，经常爆管，水压也低，楼上洗澡都没水。",
        category="livelihood", channel="service_point", workroom_code="LS-05", service_point_index=4,
        submitter_name="丁先生", submitter_phone="13962100153", days_ago=93,
        outcome="closed", unit_index=0, instructions=_I_SITE,
        reply="镇城建办协调自来水公司对双庙村老旧供水管网进行改造，更换主管道约1.5公里，为17户村民更换入户管和水表，改造后水压已恢复正常。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="双庙村的小学生上学要走312国道边上那段路，没有人行道，大车擦身而过，家长很担心，希望修一段人行道或者开校车。",
        category="education_health", channel="service_point", workroom_code="LS-05", service_point_index=4,
        submitter_name="沈女士", submitter_phone="18762300154", days_ago=93,
        outcome="closed", unit_index=3, instructions=_I_JOINT,
        reply="镇社会事业局会同城建办研究，已在该路段增设隔离护栏和警示标志，学校开通双庙片区定制公交专线，早晚各一班。人行道建设涉及国道用地，正在向上级部门申报。",
        satisfaction="basically_satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="村里小龙虾养殖户多，今年虾价跌得厉害，卖不出去，希望镇里帮忙对接销路或者搞搞电商。",
        category="agriculture", channel="service_point", workroom_code="LS-05", service_point_index=4,
        submitter_name="沈先生", submitter_phone=None, days_ago=93,
        outcome="closed", unit_index=4, instructions=_I_STUDY,
        reply="镇农业农村局已帮助双庙村养殖户对接本地商超和餐饮企业，组织参加区农产品展销会，并邀请电商团队开展直播带货培训，目前已帮助销售小龙虾约8吨。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    # SP5 杨市农贸市场 (-80)
    DemoForm(
        content="杨市农贸市场门口的公共厕所又脏又臭，洗手池的水龙头坏了很久，来赶集的老年人多，希望改造一下。",
        category="environment", channel="service_point", workroom_code="LS-08", service_point_index=5,
        submitter_name="杨先生", submitter_phone="13306180156", days_ago=80,
        outcome="closed", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已将该公厕纳入今年公厕提升改造项目，完成内部装修、更换洁具和除臭设备，增设第三卫生间，并明确专人保洁，改造后已重新开放。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="市场外面有人卖来路不明的活禽，还现场宰杀，血水流到马路上，担心有禽流感风险。",
        category="education_health", channel="service_point", workroom_code="LS-08", service_point_index=5,
        submitter_name=None, submitter_phone=None, days_ago=80,
        outcome="closed", unit_index=5, instructions=_I_JOINT,
        reply="市场监管分局联合综合执法局对市场周边活禽违规交易开展集中整治，取缔流动活禽摊点4处，并检查了市场内定点屠宰区的消毒和检疫记录，今后将常态化巡查。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="杨市社区想办个老年食堂，场地有了但缺经费，听说区里有补助政策，不知道怎么申请。",
        category="livelihood", channel="service_point", workroom_code="LS-08", service_point_index=5,
        submitter_name="陈阿姨", submitter_phone="15061800158", days_ago=80,
        outcome="answered", unit_index=3, instructions=_I_POLICY,
        reply="镇社会事业局已向社区解读区级老年助餐点建设运营补助政策，社区现有场地符合条件，已指导准备申报材料，经区民政局审核后可获得建设补助和运营补贴。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    # SP6 万马村纺织企业车间 (-66)
    DemoForm(
        content="厂里不少外地员工的孩子想在洛社上学，但积分入学不知道怎么算，要准备哪些材料也不清楚，希望有人来讲解一下。",
        category="education_health", channel="service_point", workroom_code="LS-04", service_point_index=6,
        submitter_name="刘师傅", submitter_phone="18251800159", days_ago=66,
        outcome="closed", unit_index=3, instructions=_I_POLICY,
        reply="镇社会事业局已安排工作人员到企业开展积分入学政策宣讲，现场解答员工疑问80余人次并发放办理指南，企业人事部门已建立台账，协助员工提前准备材料。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="车间夏天温度太高，员工中暑的情况时有发生，希望有关部门督促企业落实防暑降温措施和高温津贴。",
        category="livelihood", channel="service_point", workroom_code="LS-04", service_point_index=6,
        submitter_name=None, submitter_phone=None, days_ago=66,
        outcome="closed", unit_index=9, instructions=_I_JOINT,
        reply="镇人社中心联合应急管理局对万马村纺织企业开展防暑降温专项检查，督促企业增加通风降温设备、合理调整作业时间，并按规定足额发放高温津贴，已逐一复查落实。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="万马村这边企业多，但周边没有像样的快递驿站和便利店，员工下班买点东西要跑很远，希望规划一下商业配套。",
        category="economy", channel="service_point", workroom_code="LS-04", service_point_index=6,
        submitter_name="邵女士", submitter_phone="13852100161", days_ago=66,
        outcome="answered", unit_index=7, instructions=_I_STUDY,
        reply="镇经济发展局已将万马片区商业配套纳入规划研究，计划利用村集体闲置厂房改建邻里商业中心，引入便利店、快递驿站和小餐饮，目前正在进行可行性测算。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    # SP7 福山村老年活动中心 (-52)
    DemoForm(
        content="福山村老年活动中心冬天没有空调，老人下棋打牌手都冻僵了，希望能装几台空调。",
        category="livelihood", channel="service_point", workroom_code="LS-07", service_point_index=7,
        submitter_name="孙大爷", submitter_phone=None, days_ago=52,
        outcome="closed", unit_index=3, instructions=_I_STD,
        reply="镇社会事业局已为福山村老年活动中心安装空调3台，配备热水器和电热饮水机，村委会同时调整了冬季开放时间，方便老人使用。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="村里的老人看牙、配眼镜都要跑到无锡市区，路远又不方便，能不能请医生定期来村里义诊？",
        category="education_health", channel="service_point", workroom_code="LS-07", service_point_index=7,
        submitter_name="唐阿姨", submitter_phone="15190300163", days_ago=52,
        outcome="closed", unit_index=10, instructions=_I_STD,
        reply="洛社镇卫生院已联合区口腔医院和眼科专科在福山村开展义诊，为120余名老人进行口腔检查和视力筛查，并约定今后每季度开展一次巡回义诊。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="福山村有好几处废弃的旧厂房，窗户都破了，晚上黑漆漆的，经常有小孩进去玩，担心有安全隐患。",
        category="public_security", channel="service_point", workroom_code="LS-07", service_point_index=7,
        submitter_name=None, submitter_phone=None, days_ago=52,
        outcome="answered", unit_index=8, instructions=_I_SAFE,
        reply="镇应急管理局会同福山村对废弃厂房进行了排查，已对存在倒塌风险的2处房屋设置围挡和警示标识、封闭出入口，后续将结合村庄规划研究拆除或再利用方案。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    # SP8 新开河村防汛宣传 (-38)
    DemoForm(
        content="新开河村低洼处有十几户人家，每次下暴雨雨水就倒灌进屋，希望在村里增加排水泵站或者抬高路面。",
        category="urban_traffic", channel="service_point", workroom_code="LS-06", service_point_index=8,
        submitter_name="朱阿姨", submitter_phone="13771500165", days_ago=38,
        outcome="closed", unit_index=8, instructions=_I_SAFE,
        reply="镇应急管理局已在该片区配置移动排涝泵车1台并安排专人汛期值守，疏通排水管道约500米，同时将新建小型排涝泵站列入明年水利项目。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="村里防汛物资仓库里的沙袋都放了好几年，很多已经破了，救生衣也不够，希望补充一下。",
        category="other", channel="service_point", workroom_code="LS-06", service_point_index=8,
        submitter_name="尤先生", submitter_phone=None, days_ago=38,
        outcome="answered", unit_index=8, instructions=_I_STD,
        reply="镇应急管理局已对新开河村防汛物资进行清点，补充编织袋2000条、救生衣30件、应急照明灯10盏，并指导村里建立物资台账，每年汛前检查更新。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    # SP9 秦村村文体广场 (-24)
    DemoForm(
        content="秦村村到洛社的那条路上大货车多，路面被压坏了好多处，晴天尘土飞扬，希望修路并限制重型车辆通行。",
        category="urban_traffic", channel="service_point", workroom_code="LS-09", service_point_index=9,
        submitter_name="高先生", submitter_phone="18906180167", days_ago=24,
        outcome="answered", unit_index=0, instructions=_I_SITE,
        reply="镇城建办已安排养护单位修补该路段破损路面，并会同交警部门研究设置限重标志、引导重型货车绕行，路面整体翻修已列入明年农村公路提档升级计划。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="村里有个精神障碍患者，家里只有七十多岁的老母亲照顾，最近经常在外面游荡，邻居们很担心，希望有关部门关心一下。",
        category="public_security", channel="service_point", workroom_code="LS-09", service_point_index=9,
        submitter_name=None, submitter_phone=None, days_ago=24,
        outcome="answered", unit_index=2, instructions=_I_JOINT,
        reply="洛社派出所已会同秦村村和镇卫生院上门走访，协助家属落实监护责任，将患者纳入社区精神卫生管理，安排医生定期随访，并为其家庭申请了临时困难救助。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    # SP10 红明村田头 (-11)
    DemoForm(
        content="红明村今年夏天停了好几次电，正是用电高峰，养殖户的增氧机一停鱼都翻了肚，希望供电部门查查线路问题。",
        category="agriculture", channel="service_point", workroom_code="LS-10", service_point_index=10,
        submitter_name="胡先生", submitter_phone="13585100169", days_ago=11,
        outcome="assigned", unit_index=7, instructions=_I_JOINT,
        reply=None, satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="高标准农田建好才一年，田里的灌溉渠就有几段漏水了，感觉质量不太行，希望让施工单位回来修。",
        category="agriculture", channel="service_point", workroom_code="LS-10", service_point_index=10,
        submitter_name="刘先生", submitter_phone=None, days_ago=11,
        outcome="answered", unit_index=4, instructions=_I_STD,
        reply="镇农业农村局已通知施工单位在质保期内维修。经现场核查共有3段渠道接缝渗漏，施工单位已进场修复，修复完成后由农业农村局组织验收。",
        satisfaction=None, decline_reason=None, public=True,
    ),

    # ----- Channel: wechat (15) -----
    DemoForm(
        content="镇区的共享电单车停得到处都是，人行道和盲道都被占了，视障人士根本没法走，希望规范停放。",
        category="urban_traffic", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="小王", submitter_phone="19851800171", days_ago=325,
        outcome="closed", unit_index=0, instructions=_I_STD,
        reply="镇城建办已约谈共享电单车运营企业，在镇区主要道路施划电子围栏停放点68处，要求企业每日早晚集中调度整理，盲道上的违停车辆由执法人员即时清理。",
        satisfaction="satisfied", decline_reason=None, public=True, place=('洛社镇人民路镇区段', 31.6531, 120.1934),
    ),
    DemoForm(
        content="京杭运河洛社段岸边有人偷偷往河里倒废机油，河面上漂着一层油花，附近钓鱼的人都看到了。",
        category="environment", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=281,
        outcome="closed", unit_index=1, instructions=_I_SAFE,
        reply="镇生态环境办接报后立即会同海事、水利部门现场处置，对油污水面进行围挡吸附，并通过沿岸监控锁定一家船舶修理点，已依法立案查处。",
        satisfaction="satisfied", decline_reason=None, public=True, place=('京杭运河洛社段北岸', 31.6608, 120.1779),
    ),
    DemoForm(
        content="我们小区物业服务太差，垃圾不及时清，电梯坏了一个星期没人修，物业费却一分不少，业委会也一直成立不起来，希望镇里管一管。",
        category="livelihood", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="赵女士", submitter_phone="15295100173", days_ago=210,
        outcome="closed", unit_index=0, instructions=_I_STD,
        reply="镇城建办已约谈该小区物业公司，责令限期修复电梯、落实保洁制度，并纳入物业服务质量考核。成立业委会需达到法定业主人数同意，社区将指导业主按程序筹备。",
        satisfaction="unsatisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="洛社镇卫生院儿科周末没有医生，孩子晚上发烧只能跑到市里的儿童医院，路太远了，希望周末也能开儿科门诊。",
        category="education_health", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="周女士", submitter_phone="18068100174", days_ago=165,
        outcome="closed", unit_index=10, instructions=_I_STD,
        reply="洛社镇卫生院已与市儿童医院建立医联体合作，每周六、周日上午开设儿科门诊，由儿童医院专家轮流坐诊，夜间急诊患儿可通过绿色通道转诊。",
        satisfaction="satisfied", decline_reason=None, public=True, place=('洛社镇卫生院', 31.6497, 120.1962),
    ),
    DemoForm(
        content="惠山站附近晚上有黑车在出站口拉客，拼车乱要价，还跟着旅客一直走，希望整治一下。",
        category="public_security", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="小刘", submitter_phone=None, days_ago=130,
        outcome="closed", unit_index=2, instructions=_I_JOINT,
        reply="洛社派出所会同交通执法部门对惠山站周边非法营运开展专项整治，查处黑车12辆，在出站口增设巡逻岗和网约车规范上客区，站前秩序明显好转。",
        satisfaction="satisfied", decline_reason=None, public=True, place=('沪宁城际惠山站出站口', 31.6389, 120.2125),
    ),
    DemoForm(
        content="杨市那边晚上经常有人在田边烧秸秆和垃圾，烟味飘进小区，开着窗根本没法睡觉。",
        category="environment", channel="wechat", workroom_code="LS-08", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=95,
        outcome="closed", unit_index=1, instructions=_I_STD,
        reply="镇生态环境办已联合杨市社区及周边村开展露天焚烧专项巡查，增加夜间巡查频次，对发现的2起焚烧行为依法处罚，并在重点区域安装烟火识别监控。",
        satisfaction="basically_satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="建议镇图书馆周末和晚上也开放，现在只开到下午五点，上班族根本没时间去借书。",
        category="other", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="马先生", submitter_phone="13921800177", days_ago=70,
        outcome="closed", unit_index=3, instructions=_I_STUDY,
        reply="镇社会事业局已调整镇图书馆开放时间，周二至周日开放至晚上8点，周末全天开放，并在花苑社区和杨市社区新设两处24小时自助借阅点。",
        satisfaction="satisfied", decline_reason=None, public=True, place=('洛社镇图书馆', 31.6544, 120.1889),
    ),
    DemoForm(
        content="洛城大道新铺的柏油路没几个月就出现好几处坑槽，开车过去很颠，怀疑施工质量有问题。",
        category="urban_traffic", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="小张", submitter_phone=None, days_ago=36,
        outcome="answered", unit_index=0, instructions=_I_STD,
        reply="镇城建办已组织施工和监理单位现场核查，坑槽系局部基层压实度不足所致，施工单位已在质保期内免费返修，城建办还将委托第三方对该路段进行质量检测。",
        satisfaction=None, decline_reason=None, public=True, place=('洛城大道', 31.6456, 120.2041),
    ),
    DemoForm(
        content="灵活就业人员的社保缴费基数今年又涨了，我们做小生意的压力挺大，有没有什么补贴政策？",
        category="livelihood", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=25,
        outcome="answered", unit_index=9, instructions=_I_POLICY,
        reply="灵活就业人员可在规定的缴费基数上下限之间自主选择档次缴费；符合条件的就业困难人员可申请灵活就业社保补贴，具体条件可到镇便民服务中心人社窗口咨询。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="张镇桥村菜场附近流浪狗越来越多，前几天还咬伤了人，小孩放学都不敢走那条路。",
        category="environment", channel="wechat", workroom_code="LS-03", service_point_index=None,
        submitter_name="陆阿姨", submitter_phone="15152300180", days_ago=20,
        outcome="answered", unit_index=6, instructions=_I_SAFE,
        reply="镇综合执法局已联系专业机构对该区域流浪犬进行收容，目前已收容8只，并联合村委会开展文明养犬宣传，督促养犬户办理登记、出门牵绳。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="洛社初中附近的小卖部把香烟卖给学生，放学后还有学生溜进网吧，希望有关部门加强学校周边管理。",
        category="education_health", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="何先生", submitter_phone=None, days_ago=17,
        outcome="answered", unit_index=5, instructions=_I_JOINT,
        reply="市场监管分局已联合派出所对学校周边200米范围内经营场所开展检查，对1家向未成年人售烟的小卖部立案查处，并督促网吧严格落实未成年人禁入规定。",
        satisfaction=None, decline_reason=None, public=True, place=('洛社初级中学周边', 31.6572, 120.1998),
    ),
    DemoForm(
        content="我想在洛社开一家小餐馆，办营业执照、食品经营许可证要跑好几个部门，能不能一次办好？",
        category="economy", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="沈女士", submitter_phone="19951800182", days_ago=13,
        outcome="answered", unit_index=7, instructions=_I_POLICY,
        reply="镇便民服务中心已开设“一件事一次办”窗口，开餐馆涉及的营业执照、食品经营许可等事项可一窗受理、并联审批，材料齐全的一般5个工作日内办结。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="人民路和花苑路路口的井盖松动了，车轮压过去哐当哐当响，晚上特别吵，也怕哪天井盖翻起来出事。",
        category="urban_traffic", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=4,
        outcome="assigned", unit_index=0, instructions=_I_SAFE,
        reply=None, satisfaction=None, decline_reason=None, public=False, place=('人民路与花苑路交叉口', 31.6519, 120.1987),
    ),
    DemoForm(
        content="我妈今年八十二岁了，听说有高龄津贴，但不知道是自动发放还是要自己申请，在哪里办？",
        category="livelihood", channel="wechat", workroom_code=None, service_point_index=None,
        submitter_name="孙女士", submitter_phone="13861500184", days_ago=1,
        outcome="submitted", unit_index=None, instructions=None,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="红明村村口的垃圾中转站最近清运不及时，渗滤液流到路上，味道很大，路过都要捂鼻子。",
        category="environment", channel="wechat", workroom_code="LS-10", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=3,
        outcome="submitted", unit_index=None, instructions=None,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),

    # ----- Channel: web (10) -----
    DemoForm(
        content="建议镇里搭建一个本地企业和高校的对接平台，我们公司有一些技术难题想找江南大学的老师合作，但不知道从哪里找。",
        category="economy", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="吴先生", submitter_phone="18012300186", days_ago=305,
        outcome="closed", unit_index=7, instructions=_I_STD,
        reply="镇经济发展局已将贵公司需求纳入产学研合作对接清单，并组织江南大学、无锡职业技术学院专家团队来镇开展对接活动，贵公司已与一名教授团队达成初步合作意向。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="我家就在沪宁城际铁路边上，高铁经过时噪音很大，晚上根本睡不着，希望加装声屏障。",
        category="urban_traffic", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="黄先生", submitter_phone="13771300187", days_ago=190,
        outcome="closed", unit_index=0, instructions=_I_STUDY,
        reply="镇城建办已将您的诉求反映至铁路运营管理部门。经对方现场监测，该路段噪声值在国家标准限值内，暂不具备加装声屏障条件。镇里将持续跟进，并协助居民申请更换隔音窗。",
        satisfaction="unsatisfied", decline_reason=None, public=True, place=('沪宁城际铁路洛社段沿线', 31.6412, 120.1853),
    ),
    DemoForm(
        content="我家承包了三十亩稻田，今年想申请耕地地力保护补贴和稻谷种植补贴，但是网上申报系统一直登不上去。",
        category="agriculture", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="秦女士", submitter_phone="15961300188", days_ago=110,
        outcome="closed", unit_index=4, instructions=_I_POLICY,
        reply="镇农业农村局已安排工作人员协助您完成线上申报并核实种植面积。登录问题系浏览器兼容所致，操作指引已发布在镇政府网站，补贴资金将于年底前发放到户。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="洛社镇卫生院挂号太麻烦，手机上预约了到医院还要重新排队，能不能优化一下就诊流程？",
        category="education_health", channel="web", workroom_code=None, service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=33,
        outcome="answered", unit_index=10, instructions=_I_STD,
        reply="洛社镇卫生院已升级预约挂号系统，预约患者可在手机上完成签到，按预约时段直接候诊，同时在门诊大厅增设自助机4台，减少排队等候时间。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="建议洛社推广垃圾分类积分兑换，现在很多小区分类只是走形式，居民缺少积极性。",
        category="environment", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="陈女士", submitter_phone="18861300190", days_ago=28,
        outcome="answered", unit_index=6, instructions=_I_STUDY,
        reply="镇综合执法局已在花苑社区、杨市社区试点垃圾分类积分兑换，居民正确投放可累积积分兑换生活用品，试点效果良好后将在全镇推广。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="我是肢体残疾人，想在家附近找份力所能及的工作，镇里有没有残疾人就业帮扶政策？",
        category="livelihood", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="蒋先生", submitter_phone="13382100191", days_ago=18,
        outcome="answered", unit_index=9, instructions=_I_POLICY,
        reply="镇人社中心已联系您本人登记就业意向，推荐了两家残疾人就业帮扶基地的岗位，并可为您申请残疾人职业技能培训，培训期间享受交通补贴。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="花苑社区南门外那段人行道地砖大面积松动翘起，下雨天踩上去溅一腿泥水，已经有好几位老人摔倒了。",
        category="urban_traffic", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="钱先生", submitter_phone="15861800192", days_ago=8,
        outcome="assigned", unit_index=0, instructions=_I_SITE,
        reply=None, satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="我家老房子的拆迁补偿和开发商打官司已经一年多了，法院还没判下来，希望党代表出面帮我们说说话。",
        category="other", channel="web", workroom_code=None, service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=60,
        outcome="declined", unit_index=None, instructions=None,
        reply=None, satisfaction=None,
        decline_reason="该事项已进入司法诉讼程序，党代表工作室不宜介入，建议依法等待法院裁判，如有疑问可咨询镇公共法律服务中心。",
        public=False,
    ),
    DemoForm(
        content="想咨询一下，家里宅基地上的老房子想翻建，现在的审批流程是怎样的？需要准备哪些材料？",
        category="agriculture", channel="web", workroom_code=None, service_point_index=None,
        submitter_name="华先生", submitter_phone="13961300194", days_ago=2,
        outcome="submitted", unit_index=None, instructions=None,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="花苑新村附近最近有人挨家挨户推销保健品，专门找老人，还组织免费一日游，怀疑是诈骗，希望警方关注。",
        category="public_security", channel="web", workroom_code=None, service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=5,
        outcome="submitted", unit_index=None, instructions=None,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),

    # ----- Channel: phone (8) -----
    DemoForm(
        content="我是万马村的低保户，今年低保复核后每月金额少了，不清楚是什么原因，想问问清楚。",
        category="livelihood", channel="phone", workroom_code="LS-04", service_point_index=None,
        submitter_name="过师傅", submitter_phone="13815100196", days_ago=250,
        outcome="closed", unit_index=3, instructions=_I_POLICY,
        reply="镇社会事业局已调阅您家的低保复核材料，金额调整系家庭成员新增就业收入所致，工作人员已上门解释核算标准。如家庭情况发生变化，可随时申请重新核定。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="石塘湾村的农田里有人晚上偷挖泥土去卖，好几亩地挖成了大坑，下雨积水，还毁了旁边的庄稼。",
        category="agriculture", channel="phone", workroom_code="LS-02", service_point_index=None,
        submitter_name="顾大伯", submitter_phone=None, days_ago=222,
        outcome="closed", unit_index=11, instructions=_I_JOINT,
        reply="石塘湾村村委会已会同镇自然资源部门和派出所现场查处，对盗挖行为人依法处理，责令其回填土方、恢复耕作条件，受损庄稼已按协议赔偿到户。",
        satisfaction="satisfied", decline_reason=None, public=False,
    ),
    DemoForm(
        content="红明村村道晚上没有路灯，最近有几户人家鸡鸭被偷，还丢了一辆电动三轮车，希望加强夜间巡逻。",
        category="public_security", channel="phone", workroom_code="LS-10", service_point_index=None,
        submitter_name="胡阿姨", submitter_phone="15895100198", days_ago=145,
        outcome="closed", unit_index=2, instructions=_I_STD,
        reply="洛社派出所已将红明村纳入夜间重点巡防区域，组织辅警和村治安志愿者夜间巡逻，电动三轮车被盗案件已侦破。村道路灯安装已报镇城建办分批实施。",
        satisfaction="basically_satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="新开河村大桥下面的涵洞一下雨就积水，积水深的时候能没过小腿，上次有辆小汽车开进去直接熄火了。",
        category="urban_traffic", channel="phone", workroom_code="LS-06", service_point_index=None,
        submitter_name="朱师傅", submitter_phone=None, days_ago=100,
        outcome="closed", unit_index=0, instructions=_I_SAFE,
        reply="镇城建办已对该涵洞排水系统进行改造，新增雨水收集井4座，铺设排水管约150米，并安装积水深度警示标尺，近期几次强降雨中未再出现严重积水。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="双庙村有不少留守儿童，放暑假以后白天家里没人管，整天抱着手机玩，希望村里办个暑期托管班。",
        category="education_health", channel="phone", workroom_code="LS-05", service_point_index=None,
        submitter_name="丁女士", submitter_phone="18752100200", days_ago=40,
        outcome="answered", unit_index=3, instructions=_I_STUDY,
        reply="镇社会事业局已联合双庙村和团委在村新时代文明实践站开设暑期爱心托管班，由大学生志愿者辅导作业，开展阅读、手工和安全教育，已有35名孩子报名。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="我在外地打工十几年，社保在老家和外地都交过，现在回洛社了，不知道怎么把社保关系转回来。",
        category="livelihood", channel="phone", workroom_code="LS-07", service_point_index=None,
        submitter_name="唐大爷", submitter_phone=None, days_ago=12,
        outcome="answered", unit_index=9, instructions=_I_POLICY,
        reply="您可通过国家社会保险公共服务平台或“江苏智慧人社”APP在线申请养老保险关系转移接续，也可到镇便民服务中心人社窗口现场办理，工作人员会全程协助。",
        satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="人民路上一个小区里有家装修队施工，早上七点不到就开始用电钻，周末也不停，楼上楼下都受不了。",
        category="environment", channel="phone", workroom_code="LS-01", service_point_index=None,
        submitter_name="徐阿姨", submitter_phone="13506180202", days_ago=7,
        outcome="assigned", unit_index=6, instructions=_I_STD,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),
    DemoForm(
        content="我家老伴卧床好几年了，听说现在有长期护理保险可以上门护理，秦村村这边能不能办？",
        category="livelihood", channel="phone", workroom_code="LS-09", service_point_index=None,
        submitter_name="秦大妈", submitter_phone=None, days_ago=1,
        outcome="submitted", unit_index=None, instructions=None,
        reply=None, satisfaction=None, decline_reason=None, public=False,
    ),

    # ----- Channel: other (letters, walk-ins elsewhere) (4) -----
    DemoForm(
        content="镇便民服务中心办事的人很多，但是没有母婴室，带孩子来办事的妈妈喂奶、换尿布都很不方便，建议设一个。",
        category="other", channel="other", workroom_code="LS-01", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=275,
        outcome="closed", unit_index=3, instructions=_I_STD,
        reply="镇社会事业局已在镇便民服务中心一楼改造设置母婴室一处，配备婴儿护理台、哺乳椅、洗手池和温奶器，现已正式开放。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="张镇桥村有几户老人住的是危房，下雨漏水、墙也开裂了，自己没能力修，希望政府帮一帮。",
        category="livelihood", channel="other", workroom_code="LS-03", service_point_index=None,
        submitter_name="陆大伯", submitter_phone=None, days_ago=155,
        outcome="closed", unit_index=0, instructions=_I_SITE,
        reply="镇城建办会同张镇桥村对相关房屋进行了安全鉴定，其中3户属于C级危房，已纳入农村困难群众危房改造计划，修缮工程已全部完工，老人已搬回居住。",
        satisfaction="satisfied", decline_reason=None, public=True,
    ),
    DemoForm(
        content="花苑社区的楼道里贴满了开锁、疏通管道的小广告，还有人往门缝里塞贷款传单，清了又贴，希望管一管。",
        category="environment", channel="other", workroom_code="LS-11", service_point_index=None,
        submitter_name=None, submitter_phone=None, days_ago=26,
        outcome="answered", unit_index=6, instructions=_I_STD,
        reply="镇综合执法局已核查小广告上的电话号码并依法采取停机催缴措施，联合社区组织志愿者集中清理楼道，社区还将在楼道口加装门禁，减少外来人员散发。",
        satisfaction=None, decline_reason=None, public=True,
    ),
    DemoForm(
        content="我在杨市一家厂里上班被辞退了，厂里不给经济补偿，想让工作室帮我去跟老板谈，要求赔偿两个月工资。",
        category="other", channel="other", workroom_code="LS-08", service_point_index=None,
        submitter_name="杨先生", submitter_phone="18906180207", days_ago=45,
        outcome="declined", unit_index=None, instructions=None,
        reply=None, satisfaction=None,
        decline_reason="该事项属于劳动争议，已引导当事人向区劳动人事争议仲裁院申请仲裁，或前往镇劳动保障监察中队咨询，工作室不再重复受理。",
        public=False,
    ),
)


# ---------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------

_LEVELS = ("town", "district", "city", "province", "national")
_PLACE_TYPES = ("market", "village", "workshop", "event", "other")
_CATEGORIES = (
    "urban_traffic", "environment", "public_security", "livelihood",
    "education_health", "agriculture", "economy", "other",
)
_CHANNELS = ("workroom", "service_point", "wechat", "web", "phone", "other")
_OUTCOMES = ("submitted", "assigned", "answered", "closed", "declined")
_SATISFACTIONS = ("satisfied", "basically_satisfied", "unsatisfied")


def _is_mobile(phone: str) -> bool:
    return len(phone) == 11 and phone.isdigit() and phone[:2] in ("13", "15", "18", "19")


def check() -> None:
    # Workrooms
    assert len(WORKROOMS) == 11
    codes = [w.code for w in WORKROOMS]
    assert codes == [f"LS-{i:02d}" for i in range(1, 12)]
    assert len({w.name for w in WORKROOMS}) == 11
    for w in WORKROOMS:
        assert "洛社镇" in w.address and "惠山区" in w.address, w
        assert 31.62 <= w.latitude <= 31.70, w
        assert 120.14 <= w.longitude <= 120.25, w
        assert w.area
    code_set = set(codes)
    # Places of forms sent from phones: around Luoshe too, and only where no workroom gives one.
    for f in FORMS:
        if f.place is not None:
            assert f.workroom_code is None and f.place[0], f
            assert 31.62 <= f.place[1] <= 31.70 and 120.14 <= f.place[2] <= 120.25, f

    # Representatives
    assert len(REPRESENTATIVES) == 30
    phones = [r.phone for r in REPRESENTATIVES]
    assert len(set(phones)) == 30
    members: dict[str, list[int]] = {c: [] for c in codes}
    for i, r in enumerate(REPRESENTATIVES):
        assert 2 <= len(r.name) <= 3, r
        assert r.level in _LEVELS, r
        assert _is_mobile(r.phone), r
        assert 1 <= len(r.workroom_codes) <= 2, r
        assert len(set(r.workroom_codes)) == len(r.workroom_codes), r
        for c in r.workroom_codes:
            assert c in code_set, r
            members[c].append(i)
    levels = [r.level for r in REPRESENTATIVES]
    assert levels.count("province") == 1
    assert 2 <= levels.count("city") <= 3
    assert levels.count("district") >= 1
    assert levels.count("town") > len(levels) // 2
    for c, m in members.items():
        assert len(m) >= 2, c

    # Units
    assert 10 <= len(UNITS) <= 12
    assert len({u.name for u in UNITS}) == len(UNITS)

    # Service points
    assert len(SERVICE_POINTS) == 14
    past = [i for i, p in enumerate(SERVICE_POINTS) if p.day_offset < 0]
    assert len(past) >= 10
    assert any(p.day_offset > 0 for p in SERVICE_POINTS)
    assert {"market", "village", "workshop", "event"} <= {p.place_type for p in SERVICE_POINTS}
    for p in SERVICE_POINTS:
        assert p.workroom_code in code_set, p
        assert p.place_type in _PLACE_TYPES, p
        assert -150 <= p.day_offset <= 14, p
        assert 8 <= p.start_hour <= 16, p
        assert 1 <= p.hours <= 3, p
        assert 1 <= len(p.representative_indexes) <= 3, p
        for ri in p.representative_indexes:
            assert 0 <= ri < len(REPRESENTATIVES), p
            assert p.workroom_code in REPRESENTATIVES[ri].workroom_codes, (p, ri)

    # Forms
    assert len(FORMS) == 107
    outcomes = [f.outcome for f in FORMS]
    assert sum(o in ("answered", "closed") for o in outcomes) == 92
    assert outcomes.count("answered") == 30
    assert outcomes.count("closed") == 62
    assert outcomes.count("submitted") == 6
    assert outcomes.count("assigned") == 6
    assert outcomes.count("declined") == 3
    assert len({f.content for f in FORMS}) == 107
    replies = [f.reply for f in FORMS if f.reply is not None]
    assert len(set(replies)) == len(replies)
    assert set(_CATEGORIES) == {f.category for f in FORMS}
    channels = [f.channel for f in FORMS]
    assert set(channels) == set(_CHANNELS)
    assert 35 <= channels.count("workroom") <= 45
    assert channels.count("service_point") == 30
    assert 12 <= channels.count("wechat") <= 18
    assert 8 <= channels.count("web") <= 12
    assert 6 <= channels.count("phone") <= 10
    assert 2 <= channels.count("other") <= 6

    forms_per_workroom = {c: 0 for c in codes}
    forms_per_point = {i: 0 for i in past}
    for f in FORMS:
        assert 20 <= len(f.content) <= 120, (len(f.content), f.content)
        assert f.category in _CATEGORIES, f
        assert f.channel in _CHANNELS, f
        assert f.outcome in _OUTCOMES, f
        assert 1 <= f.days_ago <= 330, f
        if f.submitter_phone is not None:
            assert _is_mobile(f.submitter_phone), f
        if f.workroom_code is not None:
            assert f.workroom_code in code_set, f
            forms_per_workroom[f.workroom_code] += 1
        if f.channel in ("workroom", "service_point"):
            assert f.workroom_code is not None, f
        if f.channel == "service_point":
            assert f.service_point_index is not None, f
            assert f.service_point_index in forms_per_point, f
            sp = SERVICE_POINTS[f.service_point_index]
            assert f.days_ago == -sp.day_offset, f
            assert f.workroom_code == sp.workroom_code, f
            forms_per_point[f.service_point_index] += 1
        else:
            assert f.service_point_index is None, f

        if f.outcome in ("assigned", "answered", "closed"):
            assert f.unit_index is not None and 0 <= f.unit_index < len(UNITS), f
            assert f.instructions, f
        else:
            assert f.unit_index is None and f.instructions is None, f
        if f.outcome in ("answered", "closed"):
            assert f.reply is not None and 30 <= len(f.reply) <= 150, (len(f.reply or ""), f.reply)
        else:
            assert f.reply is None, f
        if f.outcome == "closed":
            assert f.satisfaction in _SATISFACTIONS, f
        else:
            assert f.satisfaction is None, f
        if f.outcome == "declined":
            assert f.decline_reason, f
        else:
            assert f.decline_reason is None, f

    for c, n in forms_per_workroom.items():
        assert n >= 1, c
    for i, n in forms_per_point.items():
        assert n >= 1, i

    sats = [f.satisfaction for f in FORMS if f.outcome == "closed"]
    assert 3 <= sats.count("unsatisfied") <= 4
    assert sats.count("satisfied") > len(sats) // 2
    assert sats.count("basically_satisfied") >= 1

    public_ratio = sum(f.public for f in FORMS) / len(FORMS)
    assert 0.5 <= public_ratio <= 0.7, public_ratio


if __name__ == "__main__":
    check()
    print("ok")
