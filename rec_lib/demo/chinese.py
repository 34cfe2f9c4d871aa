"""The demo shop's Chinese texts (`demo.language: zh | mixed`), written for it.

Every list is parallel to its English one in `rec_lib.demo.vocabulary.CATALOGUE_VOCABULARY` (same
length, same meaning at each position), so a shop's items draw the same words in either language
and a Chinese shop has the same world, events and ground truth as the English shop of its seed:
only the words differ. Brands stay in Latin letters, as real Chinese shops list them.

category -> (category name, nouns, {style: (adjectives, phrases)}, category phrases)
"""
from __future__ import annotations

from typing import Dict, List, Tuple

ZH_VOCABULARY: Dict[str, Tuple[str, List[str], Dict[str, Tuple[List[str], List[str]]], List[str]]] = {
    "electronics": (
        "电子产品",
        ["耳机", "音箱", "键盘", "鼠标", "显示器", "充电器", "摄像头", "路由器"],
        {
            "gaming": (["炫彩", "电竞", "机械", "竞技"],
                       ["专为长时间游戏打造", "低延迟，适合竞技对战", "可自定义炫彩灯效", "高刷新率，畅玩射击游戏"]),
            "audio": (["无线", "降噪", "高保真", "蓝牙"],
                      ["低音浑厚，高音清澈", "主动降噪，通勤必备", "录音室级音质", "三十小时续航，音乐爱好者之选"]),
            "smart home": (["智能", "无线联网", "声控", "互联"],
                           ["支持语音助手", "用手机应用随时控制", "让家居生活自动化", "定时节能"]),
        },
        ["Type-C接口", "两年质保", "小巧设计"],
    ),
    "books": (
        "图书",
        ["小说", "食谱", "指南", "选集", "传记", "手册"],
        {
            "crime": (["扣人心弦", "暗黑", "黑色", "悬疑"],
                      ["侦探追捕连环杀手", "反转直到最后一页", "宁静村庄里的谋杀案", "让人欲罢不能的惊悚故事"]),
            "science": (["图解", "科普", "天文", "进化"],
                        ["用浅显的语言讲解宇宙", "从黑洞到量子物理", "进化与基因的故事", "顶尖科学家执笔"]),
            "children": (["绘本", "睡前", "儿童插图", "韵律"],
                         ["色彩缤纷的图画，适合小读者", "适合三到六岁的睡前故事", "有趣的小动物学会分享", "适合亲子朗读"]),
        },
        ["平装版", "畅销书", "全新译本"],
    ),
    "kitchen": (
        "厨房用品",
        ["平底锅", "刀具套装", "搅拌机", "电水壶", "磨豆机", "烤盘", "汤锅"],
        {
            "baking": (["不粘", "硅胶", "专业烘焙", "活底"],
                       ["烤出完美的蛋糕和面包", "受热均匀，适合做酥皮点心", "轻松脱模，适合做松饼", "家庭烘焙爱好者之选"]),
            "coffee": (["意式浓缩", "锥刀", "咖啡师", "手冲"],
                       ["每天早上现磨咖啡豆", "像咖啡馆一样浓郁的油脂", "精准控制冲泡温度", "咖啡爱好者之选"]),
            "cookware": (["铸铁", "不锈钢", "电磁炉适用", "紫铜"],
                         ["煎牛排烤蔬菜", "适用于包括电磁炉在内的所有炉具", "可耐高温进烤箱", "厚底，适合慢炖"]),
        },
        ["可用洗碗机清洗", "易于清洁", "礼盒包装"],
    ),
    "sports": (
        "运动户外",
        ["鞋", "夹克", "垫", "水壶", "背包", "手表", "短裤"],
        {
            "running": (["轻量跑步", "透气", "马拉松", "越野"],
                        ["缓震设计，适合长距离跑步", "泥泞山路也抓地", "记录配速和心率", "反光设计，夜跑更安全"]),
            "yoga": (["瑜伽", "环保软木", "弹力", "普拉提"],
                     ["防滑表面，适合各种体式", "帮助保持平衡与呼吸", "柔软有弹性，适合拉伸", "专注正念练习"]),
            "outdoor": (["防水", "徒步", "保暖", "高山"],
                        ["大雨中也保持干爽", "寒冷山间徒步依然温暖", "结实耐用，适合露营", "收纳小巧，方便上路"]),
        },
        ["防汗", "男女同款", "可机洗"],
    ),
    "beauty": (
        "美妆个护",
        ["精华液", "面霜", "口红", "洗发水", "面膜", "香水"],
        {
            "skincare": (["保湿", "维C", "视黄醇", "温和"],
                         ["一夜淡化细纹", "滋润干性和敏感肌肤", "提亮暗沉肤色", "经皮肤科医生测试"]),
            "makeup": (["哑光", "持久", "珠光", "丝绒"],
                       ["大胆色彩全天持妆", "防晕染妆效", "轻松晕染，打造自然妆容", "晚宴魅力之选"]),
            "haircare": (["修护", "丰盈", "摩洛哥坚果油", "卷发定型"],
                         ["修复受损和染烫发质", "让细软发丝更丰盈", "抚平毛躁，塑造卷度", "在家享受沙龙效果"]),
        },
        ["零残忍", "纯素配方", "旅行装"],
    ),
    "toys": (
        "玩具",
        ["拼图", "积木套装", "娃娃", "桌游", "机器人", "毛绒玩具"],
        {
            "educational": (["科学启蒙", "编程", "科学实验", "数学"],
                            ["在游戏中学习编程", "为好奇的孩子准备的实验", "培养逻辑与解决问题的能力", "快乐学数字"]),
            "creative": (["手工", "绘画", "彩泥", "串珠"],
                         ["自己动手做首饰", "在家绘画装饰", "数小时的创意游戏", "小小艺术家之选"]),
            "party": (["家庭", "聚会", "卡牌", "策略"],
                      ["全家人的游戏之夜", "快节奏，欢笑不断", "运筹帷幄赢得胜利", "适合二到六名玩家"]),
        },
        ["适合六岁以上", "通过安全检测", "附带电池"],
    ),
    "garden": (
        "园艺",
        ["水管", "花盆", "种子套装", "修枝剪", "灯", "喂鸟器"],
        {
            "vegetables": (["有机", "传家", "蔬菜", "香草"],
                           ["自己种番茄和香草", "整个夏天收获新鲜沙拉", "适合高架苗床的有机种子", "厨房园丁之选"]),
            "decor": (["太阳能", "陶瓷", "田园风", "灯笼"],
                      ["夜晚点亮露台", "为露台增添田园魅力", "防风雨装饰", "户外温馨夜晚"]),
            "tools": (["重型", "人体工学", "伸缩", "钢制"],
                      ["轻松剪断粗树枝", "握感舒适，长时间作业不累", "够得着高处的树篱", "经久耐用"]),
        },
        ["耐霜冻", "安装简便", "抗紫外线"],
    ),
    "fashion": (
        "服饰",
        ["连衣裙", "运动鞋", "围巾", "手提包", "太阳镜", "大衣", "牛仔裤"],
        {
            "streetwear": (["宽松", "印花", "都市", "复古"],
                           ["城市大胆造型", "灵感来自滑板文化", "休闲版型，日常百搭", "限量发售设计"]),
            "formal": (["修身剪裁", "真丝", "经典", "修身"],
                       ["适合办公室和婚礼的优雅之选", "永不过时的剪裁", "面料精良，做工考究", "特殊场合之选"]),
            "summer": (["亚麻", "碎花", "沙滩", "轻薄夏季"],
                       ["炎炎夏日清凉透气", "明亮印花，度假必备", "沙滩完美之选", "轻松收纳，方便旅行"]),
        },
        ["可持续制造", "尺码标准", "免费退货"],
    ),
}
ZH_GENERIC_PHRASES = ["顾客最爱", "超值", "本季新品", "两天内发货"]  # parallel to vocabulary.GENERIC_PHRASES


def zh_category(category: str) -> str:
    """The Chinese shop's name of a category."""
    return ZH_VOCABULARY[category][0]


def zh_title(category: str, style: str, brand: str, noun: int, adjective: int, code: str = "") -> str:
    """`<brand> <adjective><noun>` (a descriptive title), or `<brand> <noun> <code>` (a name)."""
    _, nouns, styles, _ = ZH_VOCABULARY[category]
    if code:
        return f"{brand} {nouns[noun]} {code}"
    return f"{brand} {styles[style][0][adjective]}{nouns[noun]}"


def zh_description(category: str, style: str, cat_phrase: int, generic: int, phrases: Tuple[int, ...] = (),
                   code: str = "") -> str:
    """Two phrases of the style and a category phrase (descriptive), or a category phrase and the
    model code (generic)."""
    _, _, styles, cat_phrases = ZH_VOCABULARY[category]
    tail = f"{cat_phrases[cat_phrase]}，{ZH_GENERIC_PHRASES[generic]}。"
    if code:
        return f"{tail}型号 {code}。"
    return "".join(f"{styles[style][1][p]}。" for p in phrases) + tail
