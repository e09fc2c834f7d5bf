"""Language tables for the sentence splitter (`corpusgen.split`).

Abbreviations are written without their final period. What each class means
to the splitter:

- TITLE: comes before a name and never ends a sentence ("Mr. Smith").
- ALWAYS: Latin connectives that never end a sentence in practice ("e.g.").
- NUMERIC: an abbreviation only when a number follows ("No. 5", "p. 55");
  otherwise the token is read as an ordinary word ("I said no. John left").
- AMBIGUOUS: can end a sentence ("Inc.", "etc.", "U.S."); a boundary is
  taken only when the next word is a typical sentence opener (STARTERS).

Entries starting with "=" match case-sensitively (month and day names that
are also English words: "Sun.", "Mar."); all others match in any case.
"""

from __future__ import annotations

TITLE, ALWAYS, NUMERIC, AMBIGUOUS = 1, 2, 3, 4

_EN = {
    TITLE: """
        mr mrs ms messrs mmes dr drs prof profs rev revd hon gen lt col capt cpt sgt cmdr adm maj brig
        pres gov sen rep reps supt insp det mt ft pvt cpl gov't =Fr =St =Ste =Pres =Atty =Amb =Msgr
    """,
    ALWAYS: "e.g i.e cf viz vs =v approx appx esp ibid incl p.s p.p.s ps",
    NUMERIC: """
        no nos nr art arts fig figs vol vols p pp ch chap chaps sec secs sect para paras eq eqs op
        tab ref refs pg pt pts ex ext tel n° nº № ed eds
    """,
    AMBIGUOUS: """
        etc al inc ltd co corp cos jr sr bros llc plc lp llp pty bhd assn assoc dept depts univ est
        govt misc mfg intl natl ave blvd rd hwy pl sq cres ln pkwy cir apt bldg ste
        a.m p.m u.s u.k u.s.a u.n e.u d.c n.y l.a ph.d m.d b.a m.a b.sc m.sc
        ca cca min max avg sgd encl attn dist div yr yrs hr hrs mo mos wk wks
        km kg mg ml mm cm lb lbs oz mi mph sq cu gal qt
        =Jan =Feb =Mar =Apr =Jun =Jul =Aug =Sep =Sept =Oct =Nov =Dec
        =Mon =Tue =Tues =Wed =Thu =Thur =Thurs =Fri =Sat =Sun
        =Ala =Ariz =Ark =Calif =Colo =Conn =Del =Fla =Ga =Ill =Ind =Kan =Ky =La =Md =Mass =Mich
        =Minn =Miss =Mo =Mont =Neb =Nev =Okla =Ore =Pa =Tenn =Tex =Va =Vt =Wash =Wis =Wyo
        dept vet stat stats bros gov admin lit
    """,
}

_DE = {
    TITLE: "hr hrn fr frl dr prof dipl ing mag st sr =Hl",
    ALWAYS: "z.b d.h u.a u.ä o.ä s.o s.u z.t vgl bzw bspw ca evtl ggf inkl exkl zzgl sog insb bzgl",
    NUMERIC: "nr abs abb art kap bd bde s tel fig tab anm",
    AMBIGUOUS: """
        usw etc u.s.w v.chr n.chr chr jh jhd geb gest verh mio mrd tsd std min sek max mind
        allg jew co str ges gmbh mbh e.v bzgl zz zzt usf dgl ff
        jan feb märz apr aug sept okt nov dez
    """,
}

_FR = {
    TITLE: "mm mme mmes mlle mlles dr pr me mgr =St =Ste",
    ALWAYS: "cf c.-à-d c-à-d p.ex env vs",
    NUMERIC: "n° nº no p pp vol chap art fig t",
    AMBIGUOUS: """
        etc av apr j.-c janv févr fév avr juil sept oct nov déc bd boul éd coll cie ibid
        min max ca resp
    """,
}

_ES = {
    TITLE: "sr sra srta sres sras dr dra lic lda ing arq prof profa d dña dn fr sto sta",
    ALWAYS: "p.ej vs cf aprox",
    NUMERIC: "núm nº n° no pág págs p pp art cap vol fig tel",
    AMBIGUOUS: """
        etc ud uds vd vds ee.uu cía s.a ltda av avda c gral col dpto ene feb abr jun jul ago sept
        oct nov dic a.c d.c a.m p.m
    """,
}

_IT = {
    TITLE: "sig sigg sig.ra sig.na dott dott.ssa dr prof prof.ssa ing avv arch geom rag on mons sen",
    ALWAYS: "cfr p.es vs",
    NUMERIC: "n nr no pag pagg p pp art cap vol fig tel",
    AMBIGUOUS: "ecc s.p.a s.r.l gen feb apr giu lug ago sett ott nov dic ca a.c d.c",
}

_PT = {
    TITLE: "sr sra srta dr dra prof profa eng exmo exma v.exa d",
    ALWAYS: "p.ex vs cf",
    NUMERIC: "n nº n.º no pág págs p pp art cap vol fig tel",
    AMBIGUOUS: "etc av ltda cia s.a jan fev mar abr jun jul ago set out nov dez a.c d.c",
}

_NL = {
    TITLE: "dhr mevr mr dr drs prof ir ing mgr st",
    ALWAYS: "bijv bv d.w.z o.a m.a.w i.p.v t.o.v m.b.t zgn resp vs cf",
    NUMERIC: "nr blz p pp art hfst fig tel",
    AMBIGUOUS: "enz etc ca jl jr sr n.v b.v jan feb mrt apr jun jul aug sept okt nov dec",
}

_RU = {
    TITLE: "г-н г-жа проф акад",
    ALWAYS: "т.е т.к т.н т.ч напр см ср т.о",
    NUMERIC: "№ стр с рис табл гл ст п пп т",
    AMBIGUOUS: """
        т.д т.п др пр г гг в вв ул им обл р-н руб коп тыс млн млрд долл ок англ лат нем франц
        янв фев февр апр авг сент окт нояб дек н.э до н.э
    """,
}

_PL = {
    TITLE: "dr prof mgr inż hab ks pan pani płk gen",
    ALWAYS: "np tzn tj m.in zob por wg",
    NUMERIC: "nr s str rys tab art ust poz",
    AMBIGUOUS: "itd itp ok godz r ul al tys mln mld zł gr w ww p.n.e n.e sp tel",
}

_GENERIC = {
    TITLE: "dr prof mr mrs",
    ALWAYS: "e.g i.e cf vs",
    NUMERIC: "no nr p pp",
    AMBIGUOUS: "etc ca st",
}

STARTERS = {
    "en": """
        a an the this that these those there here it its it's he she they we i i'm i've i'd i'll you your
        my our his her their him them me us but and or so if as at in on for to of by from with after
        before when while what why how who whom whose where which however also although though because
        since some many most all any each every both no not yes one two three now today then thus hence
        please thanks thank let let's do does did is are was were will can could would should may might
        must have has had be being been just still yet even only well oh ok okay hi hello dear sorry
        mr mrs ms dr prof sir maybe perhaps instead meanwhile finally first second third next last other
        another such nothing everything something someone anyone everyone nobody never always often
        sometimes again indeed moreover furthermore therefore otherwise besides unfortunately fortunately
    """,
    "de": """
        der die das dem den des ein eine einer einem einen er sie es ich wir ihr du man in im am an auf
        aus bei mit nach von vor zu zum zur über unter aber und oder doch dann denn dies diese dieser
        dieses auch als wenn weil da damit deshalb daher trotzdem außerdem so nun jetzt hier heute
        seit sein seine ihre unser wie was wer wo warum nicht kein keine herr frau dr prof danach dabei
        dazu darauf deswegen somit zudem jedoch allerdings später zuvor schließlich alle viele einige
        beide mehr nur noch bis während obwohl ob
    """,
    "fr": """
        le la les l un une des du de ce cet cette ces il elle ils elles on nous vous je j c ça cela
        mais et ou donc or ni car puis ensuite alors en dans sur pour par avec après avant depuis
        lorsque quand si comme il y a voici voilà son sa ses leur leurs mon ma mes qui que quoi où
        pourquoi comment m mme mlle dr
    """,
    "es": """
        el la los las lo un una unos unas este esta estos estas ese esa eso esto él ella ellos ellas
        yo tú usted ustedes nosotros vosotros se pero y o ni sin en con por para de desde tras según
        cuando si como que quien donde porque además también sin embargo luego entonces así su sus
        mi mis hay no sí sr sra dr
    """,
    "it": """
        il lo la i gli le un uno una questo questa quello quella egli ella lui lei loro noi voi io tu
        si ma e o né in con per da di su dopo prima quando se come che chi dove perché inoltre anche
        poi allora così suo sua suoi sue non sì c è sig dott prof
    """,
    "pt": """
        o a os as um uma uns umas este esta isto esse essa isso ele ela eles elas eu tu você vocês nós
        mas e ou nem em no na nos nas com por para de do da desde após quando se como que quem onde
        porque além também então assim seu sua seus suas não sim há sr sra dr
    """,
    "nl": """
        de het een dit dat deze die daar hier hij zij ze het wij we jij je u ik men maar en of want dus
        toen daarna dan in op aan met voor na van bij uit als wanneer omdat hoewel ook zijn haar hun
        ons mijn niet geen er dhr mevr dr
    """,
    "ru": """
        в во на с со к ко по о об от до из за для при после перед над под через без и а но или да же
        он она оно они мы вы я ты это этот эта эти тот та те так там тут здесь сейчас теперь тогда
        однако поэтому потому если когда как что кто где почему его её их наш ваш мой не нет потом
        затем также кроме впрочем вот все всё многие сегодня вчера завтра теперь сначала
    """,
    "pl": """
        w we na z ze do od po przy za przez dla bez i a ale lub oraz czy to ten ta te tym jego jej ich
        on ona ono oni one my wy ja ty jest są był była było byli nie tak jednak więc dlatego gdy kiedy
        jeśli jak co kto gdzie dlaczego pan pani
    """,
}

# Words that end in "!" without ending the sentence ("Yahoo! Mail").
BANG_WORDS = frozenset("yahoo jeopardy joomla oklahoma wham".split())

# Frequent function words used to guess a Latin-script document's language.
LANG_HINTS = {
    "en": "the and of to is in that it was for with as on are by this be he she they you not have has from but",
    "de": """der die und das ist nicht ein eine zu den von mit sich des auf für im dem er sie es ich wir nach auch
        war wurde wird aber oder sind hat haben noch nur dann""",
    "fr": "le la les et des est une que du dans pour pas qui sur au avec il elle ce",
    "es": "el la los las y que del en un una es por con para se al lo como más",
    "it": "il di che la è e un una per non del della sono con gli le si al da",
    "pt": "o a os as de que do da em um uma para com não é se na no ao dos",
    "nl": "de het een en van is dat op te in niet zijn met voor die er ook aan",
    "pl": "i w na z się nie do to że jest o jak po od za co ale tak przez",
}

# Word endings that mark an abbreviation in compounds ("Hauptstr. 5").
ABBREVIATION_SUFFIXES = {"de": ("str",), "nl": ("str",)}

_TABLES = {"en": _EN, "de": _DE, "fr": _FR, "es": _ES, "it": _IT, "pt": _PT, "nl": _NL, "ru": _RU, "pl": _PL}


def abbreviation_tables(lang: str) -> tuple[dict[str, int], dict[str, int]]:
    """(case-insensitive table keyed by lowercase, case-sensitive table) for `lang`."""
    folded: dict[str, int] = {}
    exact: dict[str, int] = {}
    # Every language also knows the universal set: scholarly Latin and the
    # English titles that appear in any web text.
    for table in (_GENERIC, _TABLES.get(lang, {})):
        for kind, words in table.items():
            for word in words.split():
                if word.startswith("="):
                    exact[word[1:]] = kind
                else:
                    folded[word.lower()] = kind
    return folded, exact


def starters(lang: str) -> frozenset[str]:
    return frozenset(STARTERS.get(lang, STARTERS["en"]).split())
