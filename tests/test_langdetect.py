"""Language identification and foreign-chunk detection (the MT heuristic's building block)."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.text.langdetect import (
    LANGUAGE_NAMES,
    detect_language,
    find_foreign_spans,
    is_english,
)

# Sentences written for these tests. TUNING informed the word lists; HELD_OUT was written
# afterwards and never used to change the module.
TUNING = {
    "en": [
        "The committee approved the new budget after a long debate on Tuesday.",
        "She has lived in the same small house near the river for forty years.",
        "Most of the early settlers came from farming villages in the north.",
        "The bridge was closed for repairs, so we had to take the ferry.",
        "He never told anyone where he had hidden the letters.",
        "Scientists believe that the comet will return in about seventy years.",
        "Our neighbours are planning a party for the end of the summer.",
        "It was the first time that the team had won a championship.",
        "Please send me the report before the meeting starts tomorrow morning.",
        "The museum owns several paintings that were stolen during the war.",
    ],
    "fr": [
        "Le gouvernement a annoncé de nouvelles mesures pour soutenir les agriculteurs.",
        "Nous sommes allés à la plage avec nos enfants pendant les vacances.",
        "Il ne savait pas pourquoi elle était partie sans dire un mot.",
        "La bibliothèque de la ville est fermée le dimanche et les jours fériés.",
        "Je voudrais réserver une table pour quatre personnes ce soir.",
        "Les élèves doivent rendre leurs devoirs avant la fin de la semaine.",
        "Cette église a été construite au douzième siècle par des moines.",
        "Mon frère travaille dans une usine qui fabrique des pièces de voiture.",
        "Elle a toujours rêvé de vivre dans une maison au bord de la mer.",
        "Il fait très froid en hiver dans les montagnes du nord.",
    ],
    "de": [
        "Die Regierung hat neue Maßnahmen zur Unterstützung der Landwirte angekündigt.",
        "Wir sind mit unseren Kindern in den Ferien an den Strand gefahren.",
        "Er wusste nicht, warum sie ohne ein Wort gegangen war.",
        "Die Bibliothek der Stadt ist am Sonntag und an Feiertagen geschlossen.",
        "Ich möchte einen Tisch für vier Personen für heute Abend reservieren.",
        "Die Schüler müssen ihre Hausaufgaben bis zum Ende der Woche abgeben.",
        "Diese Kirche wurde im zwölften Jahrhundert von Mönchen erbaut.",
        "Mein Bruder arbeitet in einer Fabrik, die Autoteile herstellt.",
        "Sie hat immer davon geträumt, in einem Haus am Meer zu wohnen.",
        "Im Winter ist es in den Bergen im Norden sehr kalt.",
    ],
    "es": [
        "El gobierno ha anunciado nuevas medidas para apoyar a los agricultores.",
        "Fuimos a la playa con nuestros hijos durante las vacaciones.",
        "No sabía por qué ella se había ido sin decir una palabra.",
        "La biblioteca de la ciudad está cerrada los domingos y días festivos.",
        "Quisiera reservar una mesa para cuatro personas esta noche.",
        "Los alumnos tienen que entregar sus deberes antes del fin de semana.",
        "Esta iglesia fue construida en el siglo doce por unos monjes.",
        "Mi hermano trabaja en una fábrica que produce piezas de coche.",
        "Ella siempre soñó con vivir en una casa junto al mar.",
        "Hace mucho frío en invierno en las montañas del norte.",
    ],
    "it": [
        "Il governo ha annunciato nuove misure per sostenere gli agricoltori.",
        "Siamo andati al mare con i nostri figli durante le vacanze.",
        "Non sapeva perché lei se ne fosse andata senza dire una parola.",
        "La biblioteca della città è chiusa la domenica e nei giorni festivi.",
        "Vorrei prenotare un tavolo per quattro persone per stasera.",
        "Gli studenti devono consegnare i compiti entro la fine della settimana.",
        "Questa chiesa fu costruita nel dodicesimo secolo da alcuni monaci.",
        "Mio fratello lavora in una fabbrica che produce pezzi di ricambio per auto.",
        "Ha sempre sognato di vivere in una casa vicino al mare.",
        "In inverno fa molto freddo sulle montagne del nord.",
    ],
    "pt": [
        "O governo anunciou novas medidas para apoiar os agricultores.",
        "Fomos à praia com os nossos filhos durante as férias.",
        "Ele não sabia por que ela tinha ido embora sem dizer uma palavra.",
        "A biblioteca da cidade está fechada aos domingos e feriados.",
        "Eu gostaria de reservar uma mesa para quatro pessoas esta noite.",
        "Os alunos têm de entregar os trabalhos de casa até ao fim da semana.",
        "Esta igreja foi construída no século doze por monges.",
        "O meu irmão trabalha numa fábrica que produz peças de automóveis.",
        "Ela sempre sonhou em morar numa casa perto do mar.",
        "Faz muito frio no inverno nas montanhas do norte.",
    ],
    "nl": [
        "De regering heeft nieuwe maatregelen aangekondigd om de boeren te steunen.",
        "We zijn in de vakantie met onze kinderen naar het strand gegaan.",
        "Hij wist niet waarom ze zonder een woord te zeggen was vertrokken.",
        "De bibliotheek van de stad is op zondag en feestdagen gesloten.",
        "Ik wil graag een tafel voor vier personen reserveren voor vanavond.",
        "De leerlingen moeten hun huiswerk voor het einde van de week inleveren.",
        "Deze kerk werd in de twaalfde eeuw door monniken gebouwd.",
        "Mijn broer werkt in een fabriek die auto-onderdelen maakt.",
        "Ze heeft er altijd van gedroomd om in een huis aan zee te wonen.",
        "In de winter is het erg koud in de bergen in het noorden.",
    ],
}

HELD_OUT = {
    "en": [
        "Why did nobody warn us about the storm?",
        "The engine failed twice before the pilot decided to land.",
        "I think this recipe needs more salt and less sugar.",
        "Thousands of people gathered in the square to hear the speech.",
        "Can you tell me how long the journey will take?",
        "His paintings are now worth far more than he ever earned.",
    ],
    "fr": [
        "Pourquoi personne ne nous a prévenus de la tempête ?",
        "Le moteur est tombé en panne deux fois avant que le pilote décide d'atterrir.",
        "Je pense que cette recette a besoin de plus de sel et de moins de sucre.",
        "Des milliers de personnes se sont rassemblées sur la place pour écouter le discours.",
        "Pouvez-vous me dire combien de temps durera le voyage ?",
        "Ses tableaux valent aujourd'hui bien plus que ce qu'il a jamais gagné.",
    ],
    "de": [
        "Warum hat uns niemand vor dem Sturm gewarnt?",
        "Der Motor fiel zweimal aus, bevor der Pilot beschloss zu landen.",
        "Ich glaube, dieses Rezept braucht mehr Salz und weniger Zucker.",
        "Tausende Menschen versammelten sich auf dem Platz, um die Rede zu hören.",
        "Können Sie mir sagen, wie lange die Reise dauert?",
        "Seine Bilder sind heute viel mehr wert, als er jemals verdient hat.",
    ],
    "es": [
        "¿Por qué nadie nos avisó de la tormenta?",
        "El motor falló dos veces antes de que el piloto decidiera aterrizar.",
        "Creo que esta receta necesita más sal y menos azúcar.",
        "Miles de personas se reunieron en la plaza para escuchar el discurso.",
        "¿Puede decirme cuánto tiempo durará el viaje?",
        "Sus cuadros valen hoy mucho más de lo que él ganó en toda su vida.",
    ],
    "it": [
        "Perché nessuno ci ha avvertito della tempesta?",
        "Il motore si è guastato due volte prima che il pilota decidesse di atterrare.",
        "Penso che questa ricetta abbia bisogno di più sale e meno zucchero.",
        "Migliaia di persone si sono radunate in piazza per ascoltare il discorso.",
        "Può dirmi quanto durerà il viaggio?",
        "I suoi quadri oggi valgono molto più di quanto abbia mai guadagnato.",
    ],
    "pt": [
        "Por que ninguém nos avisou sobre a tempestade?",
        "O motor falhou duas vezes antes de o piloto decidir aterrar.",
        "Acho que esta receita precisa de mais sal e menos açúcar.",
        "Milhares de pessoas reuniram-se na praça para ouvir o discurso.",
        "Pode dizer-me quanto tempo vai durar a viagem?",
        "Os quadros dele valem hoje muito mais do que ele alguma vez ganhou.",
    ],
    "nl": [
        "Waarom heeft niemand ons gewaarschuwd voor de storm?",
        "De motor viel twee keer uit voordat de piloot besloot te landen.",
        "Ik denk dat dit recept meer zout en minder suiker nodig heeft.",
        "Duizenden mensen verzamelden zich op het plein om de toespraak te horen.",
        "Kunt u mij vertellen hoe lang de reis duurt?",
        "Zijn schilderijen zijn nu veel meer waard dan hij ooit heeft verdiend.",
    ],
}

SCRIPTS = {
    "ru": "Правительство объявило о новых мерах поддержки фермеров.",
    "uk": "Уряд оголосив про нові заходи підтримки фермерів.",
    "el": "Η κυβέρνηση ανακοίνωσε νέα μέτρα για τη στήριξη των αγροτών.",
    "ar": "أعلنت الحكومة عن إجراءات جديدة لدعم المزارعين.",
    "fa": "دولت اقدامات تازه‌ای برای کمک به کشاورزان اعلام کرد.",
    "he": "הממשלה הודיעה על צעדים חדשים לתמיכה בחקלאים.",
    "zh": "政府宣布了支持农民的新措施。",
    "ja": "政府は農家を支援するための新しい措置を発表した。",
    "ko": "정부는 농민을 지원하기 위한 새로운 조치를 발표했다.",
    "hi": "सरकार ने किसानों की मदद के लिए नए उपायों की घोषणा की।",
    "th": "รัฐบาลประกาศมาตรการใหม่เพื่อช่วยเหลือเกษตรกร",
}


def _accuracy(table):
    total = correct = 0
    misses = []
    for lang, sentences in table.items():
        for s in sentences:
            got, _ = detect_language(s)
            total += 1
            correct += got == lang
            if got != lang:
                misses.append((lang, got, s))
    return correct / total, misses


# --------------------------------------------------------------------------- detect_language


def test_tuning_sentences_accuracy():
    acc, misses = _accuracy(TUNING)
    assert acc >= 0.97, misses


def test_held_out_sentences_accuracy():
    acc, misses = _accuracy(HELD_OUT)
    assert acc >= 0.9, misses


@pytest.mark.parametrize("lang,text", sorted(SCRIPTS.items()))
def test_script_languages(lang, text):
    got, conf = detect_language(text)
    assert got == lang
    assert conf >= 0.6
    assert lang in LANGUAGE_NAMES


def test_confidence_is_a_probability_and_grows_with_evidence():
    short = detect_language("Le chat.")
    long = detect_language(
        "Le chat est sur la table et le chien dort dans le jardin pendant que les enfants jouent."
    )
    assert long[0] == "fr"
    assert 0.0 <= short[1] <= long[1] <= 1.0


@pytest.mark.parametrize("text", ["", "   ", "12345 67.8", "!!! ???", "→ ← ∑"])
def test_no_letters_is_undetermined(text):
    assert detect_language(text) == ("und", 0.0)


@pytest.mark.parametrize(
    "text",
    [
        "Jean-Paul Sartre and Simone de Beauvoir met in Paris in 1929.",
        "Los Angeles and San Francisco are the largest cities in California.",
        "The Louvre is the most visited museum in the world.",
        "I went to the café and ordered a croissant.",
    ],
)
def test_english_with_foreign_names_is_english(text):
    assert is_english(text)


def test_english_pronoun_is_not_italian():
    assert detect_language("I think I can do it.")[0] == "en"
    assert detect_language("i bambini giocano e i cani dormono")[0] == "it"


def test_ukrainian_and_russian_told_apart():
    assert detect_language("Я люблю читати книжки і гуляти в парку.")[0] == "uk"
    assert detect_language("Я люблю читать книги и гулять в парке.")[0] == "ru"


def test_detect_is_fast_on_long_text():
    text = " ".join(TUNING["en"]) * 50  # ~5k words; detection reads the first 10k characters
    start = time.perf_counter()
    for _ in range(10):
        assert detect_language(text)[0] == "en"
    assert (time.perf_counter() - start) / 10 < 0.05


# --------------------------------------------------------------------------- find_foreign_spans

ENGLISH_WITH_NAMES = [
    "Jean-Paul Sartre and Simone de Beauvoir met in Paris in 1929, and their relationship "
    "lasted until his death in 1980.",
    "Los Angeles, San Diego, La Jolla, Las Vegas, El Paso and Santa Fe are among the largest "
    "cities of the American Southwest.",
    "Pablo Diego José Francisco de Paula Juan Nepomuceno María de los Remedios Cipriano de la "
    "Santísima Trinidad Ruiz y Picasso was a Spanish painter.",
    "The architects Ludwig Mies van der Rohe and Walter Gropius both taught at the Bauhaus "
    "before emigrating to the United States.",
    "Leonardo da Vinci, Michelangelo di Lodovico Buonarroti Simoni and Raffaello Sanzio da "
    "Urbino are often named together.",
    "Charles de Gaulle read Le Monde every morning, while his aides preferred Le Figaro and "
    "La Croix.",
    "After the coup d'état, the new regime presented the reforms as a fait accompli; critics "
    "saw the façade of a naïve raison d'être.",
    "The café near the Hôtel de Ville serves crème brûlée, pain au chocolat and a café au lait "
    "that visitors praise.",
    "Die Hard, Das Boot and La Dolce Vita were shown at the festival, along with El Laberinto "
    "del Fauno.",
    "He played for Real Madrid, Atlético de Madrid and Deportivo de La Coruña before joining "
    "Paris Saint-Germain.",
    "In French, the articles le, la and les are used before nouns, while de and du express "
    "possession or quantity.",
    "The two-door coupe, the three-door hatchback and the five-door wagon were built near Detroit.",
    "Kleiman was born in Koog aan de Zaan, Netherlands and met his wife in Amsterdam.",
    "The alloy is composed of aluminium (Al), nickel (Ni) and cobalt (Co), hence the name "
    "al-ni-co.",
    "Glycated hemoglobin (hemoglobin A1c, HbA1c, A1C, or Hb1c) is measured in every blood test.",
]


@pytest.mark.parametrize("text", ENGLISH_WITH_NAMES)
def test_no_false_positive_on_english_with_names(text):
    assert find_foreign_spans(text) == []


# (English before, foreign chunk, English after, language of the chunk)
EMBEDDED = [
    (
        "The guide added: ",
        "Le chat est sur la table et le chien dort dans le jardin",
        ". Everyone laughed.",
        "fr",
    ),
    (
        'The sign said "',
        "No se permite la entrada a los perros ni a los gatos en el parque",
        '" in large letters.',
        "es",
    ),
    (
        "According to the chronicle, ",
        "La città fu fondata dai Romani nel primo secolo e divenne poi un importante centro "
        "commerciale",
        ". The chronicle is lost.",
        "it",
    ),
    (
        "The poem begins with the line ",
        "O mar salgado, quanto do teu sal são lágrimas de Portugal e das mães que choraram",
        ". It was written by Pessoa.",
        "pt",
    ),
    (
        "The paper reported that ",
        "de regering heeft nieuwe maatregelen aangekondigd om de boeren in het noorden te steunen",
        ", and the story spread quickly.",
        "nl",
    ),
    (
        "His dissertation (",
        "Die römische Agrargeschichte in ihrer Bedeutung für das Staats- und Privatrecht",
        ") was published in 1891.",
        "de",
    ),
    (
        "The Russian title is ",
        "Преступление и наказание, роман Фёдора Достоевского о бедном студенте из Петербурга",
        ", and it was first published in 1866.",
        "ru",
    ),
    (
        "The plaque reads ",
        "南京大学历史系建立于一九二零年是中国最早的历史系之一",
        " and hangs near the gate.",
        "zh",
    ),
    (
        "The game was known in Japan as I Love Donald Duck (Japanese: ",
        "アイラブドナルドダック グルジア王の秘宝",
        ", Hepburn: Ai Rabu Donarudo Dakku).",
        "ja",
    ),
]


@pytest.mark.parametrize("before,chunk,after,lang", EMBEDDED)
def test_finds_embedded_chunk(before, chunk, after, lang):
    text = before + chunk + after
    assert find_foreign_spans(text) == [(len(before), len(before) + len(chunk), lang)]


def test_chunk_shorter_than_min_tokens_is_ignored():
    text = "The guide added: Le chat est sur la table. Everyone laughed."  # 6 foreign words
    assert find_foreign_spans(text) == []
    assert [lang for *_, lang in find_foreign_spans(text, min_tokens=5)] == ["fr"]


def test_english_context_required_by_default():
    french = "Le chat est sur la table et le chien dort dans le jardin pendant que nous mangeons."
    assert find_foreign_spans(french) == []
    assert find_foreign_spans(french, english_context=False) == [(0, len(french) - 1, "fr")]


def test_two_chunks_in_one_text():
    text = (
        "Her motto was « Le cœur a ses raisons que la raison ne connaît point », which she took "
        'from Pascal, while her brother preferred "Wer immer strebend sich bemüht, den können wir '
        'erlösen und wir sind froh" from Goethe.'
    )
    assert [lang for *_, lang in find_foreign_spans(text)] == ["fr", "de"]


def test_min_tokens_must_be_positive():
    with pytest.raises(ValueError):
        find_foreign_spans("some text", min_tokens=0)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_spans_are_well_formed_for_any_text(text):
    spans = find_foreign_spans(text, min_tokens=3, english_context=False)
    last_end = 0
    for start, end, lang in spans:
        assert last_end <= start < end <= len(text)
        assert text[start].isalnum() or not text[start].isascii()
        assert lang != "en"
        last_end = end


def test_foreign_spans_fast_on_english_document():
    doc = " ".join(TUNING["en"] + HELD_OUT["en"]) * 5  # ~900 words of plain English
    start = time.perf_counter()
    for _ in range(10):
        assert find_foreign_spans(doc) == []
    assert (time.perf_counter() - start) / 10 < 0.05


@pytest.mark.slow
def test_wikipedia_prose_false_positive_rate(shared_data):
    """Ordinary English Wikipedia: WikiText-2 test paragraphs and 20k corpus passages."""
    raw = (shared_data / "wikitext2_raw" / "wiki.test.raw").read_text("utf-8").replace("\r\n", "\n")
    paragraphs = [p for p in raw.split("\n") if len(p.split()) > 20]
    flagged = [p for p in paragraphs if find_foreign_spans(p)]
    # the one known hit is a Japanese title in the QuackShot article
    assert len(flagged) <= 2, flagged
    passages = []
    with open(shared_data / "wiki_corpus" / "passages.jsonl", encoding="utf-8") as f:
        for line in f:
            passages.append(json.loads(line)["text"])
            if len(passages) == 20_000:
                break
    start = time.perf_counter()
    hits = [(p, find_foreign_spans(p)) for p in passages]
    per_doc = (time.perf_counter() - start) / len(passages)
    hits = [(p, s) for p, s in hits if s]
    assert per_doc < 0.005
    # Wikipedia quotes foreign titles now and then (about 0.3% of passages, nearly all real);
    # Latin-script hits must at least contain a chunk the detector calls non-English.
    assert len(hits) <= 0.006 * len(passages)
    for p, spans in hits:
        for s, e, _ in spans:
            assert detect_language(p[s:e])[0] not in ("en", "und")
