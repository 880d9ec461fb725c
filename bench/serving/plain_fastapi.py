"""The baseline: a plain FastAPI endpoint speaking OIP v2 JSON, predict on the event loop.

python plain_fastapi.py MODEL.joblib PORT
"""

import sys

import joblib
import numpy as np
import uvicorn
from fastapi import FastAPI

model = joblib.load(sys.argv[1])
app = FastAPI()


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: dict) -> dict:
    tensor = request["inputs"][0]
    x = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    y = model.predict(x)
    return {
        "model_name": name,
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": list(y.shape), "data": y.tolist()}
        ],
    }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
